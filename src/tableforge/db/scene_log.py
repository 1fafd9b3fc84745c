"""Scene and fog changes on the transactional path (they are rare: GM actions), with their audiences.

A fog change never reads the whole fog to decide what players now see: a `reveal`/`hide` of shape S
changes exactly the tokens whose centre is inside S (read by S's bounding box, then tested), and
reveal all / hide all change every token of the scene. Each token keeps `fogged` in step, so
everything else (snapshots, moves on a scene with a uniform fog) answers without geometry.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db.board_log import TOKEN_COLUMNS, Log, seen
from tableforge.db.changes import (
    UNCHANGED,
    ActivateScene,
    ChangeFog,
    CreateScene,
    RemoveScene,
    StoredEvent,
    UpdateScene,
)
from tableforge.db.log_store import Variant, next_versions, store
from tableforge.db.schema import board_tokens, game_assets, game_rooms, scenes
from tableforge.domain import events as ev
from tableforge.domain import fog as fogs
from tableforge.domain import scenes as rules
from tableforge.domain import wire
from tableforge.domain.errors import Conflict, NotFound, ValidationFailed

SCENE_COLUMNS = (scenes.c.id, scenes.c.room_id, scenes.c.name, scenes.c.position, scenes.c.map_asset_id,
                 scenes.c.grid, scenes.c.fog, scenes.c.created_at)
_WITH_MAP = (sa.select(*SCENE_COLUMNS, game_assets.c.width.label("map_width"),
                       game_assets.c.height.label("map_height"), game_assets.c.sha256.label("map_sha256"),
                       game_assets.c.type.label("map_type"))
             .select_from(scenes.outerjoin(game_assets, game_assets.c.id == scenes.c.map_asset_id)))
_STATE = sa.select(*TOKEN_COLUMNS)


def scene_json(row: RowMapping, *, full: bool = True) -> dict[str, Any]:
    """A scene row of `_WITH_MAP` (or the same columns) in its public shape."""
    map_ = None
    if row["map_asset_id"] is not None and row["map_sha256"] is not None:
        map_ = wire.scene_map({"id": row["map_asset_id"], "width": row["map_width"], "height": row["map_height"]},
                              wire.asset_url(row["map_sha256"], row["map_type"]))
    return wire.scene(row, map_, full=full)


def not_found() -> NotFound:
    return NotFound("no such scene in this room", code="scene_not_found")


async def read_scene(conn: AsyncConnection, room_id: str, scene_id: str) -> RowMapping:
    row = (await conn.execute(_WITH_MAP.where(scenes.c.id == scene_id, scenes.c.room_id == room_id))
           ).mappings().first()
    if row is None:
        raise not_found()
    return row


async def _check_map(conn: AsyncConnection, room_id: str, asset_id: str | None) -> None:
    if asset_id is None:
        return
    owner = (await conn.execute(sa.select(game_assets.c.room_id).where(game_assets.c.id == asset_id))).scalar()
    if owner is None or str(owner) != room_id:
        raise NotFound("no such asset in this room", code="asset_not_found")


def _grid(changes: dict[str, Any] | None, current: dict[str, Any] | None) -> dict[str, Any]:
    try:
        return rules.grid(changes, current)
    except rules.GridError as exc:
        raise ValidationFailed(str(exc), code="invalid_message",
                               details=[{"field": f"grid.{exc.field}".rstrip("."), "problem": exc.problem}]) from None


async def _update_fog_free(conn: AsyncConnection, room_id: str) -> None:
    """`game_rooms.fog_free`: whether no scene of the room has any fog (a shape, or a hidden base)."""
    fogged = (await conn.execute(sa.select(sa.func.count()).where(
        scenes.c.room_id == room_id,
        sa.or_(scenes.c.fog_count > 0, scenes.c.fog["base"].as_string() == fogs.HIDDEN)))).scalar()
    await conn.execute(sa.update(game_rooms).where(game_rooms.c.id == room_id).values(fog_free=not fogged))


async def create_scene(log: Log, conn: AsyncConnection, room_id: str, c: CreateScene) -> StoredEvent[dict[str, Any]]:
    version, _ = await next_versions(conn, room_id)
    count, last = (await conn.execute(sa.select(sa.func.count(), sa.func.max(scenes.c.position))
                                      .where(scenes.c.room_id == room_id))).one()
    if int(count) >= rules.MAX_SCENES:
        raise Conflict(f"a room has at most {rules.MAX_SCENES} scenes", code="too_many_scenes")
    await _check_map(conn, room_id, c.map_asset_id)
    await conn.execute(sa.insert(scenes).values(
        id=c.scene_id, room_id=room_id, name=c.name, position=(int(last) + 1) if last is not None else 0,
        map_asset_id=c.map_asset_id, grid=_grid(c.grid, None), fog=fogs.Fog().to_json(), fog_count=0,
        fog_version=0, created_at=c.created_at))
    scene = scene_json(await read_scene(conn, room_id, c.scene_id))
    return await store(conn, log.history_size, room_id, version, ev.SCENE_ADDED, c.by, {"scene": scene}, scene, "g")


async def update_scene(log: Log, conn: AsyncConnection, room_id: str, c: UpdateScene) -> StoredEvent[dict[str, Any]]:
    version, players_scene = await next_versions(conn, room_id)
    row = await read_scene(conn, room_id, c.scene_id)
    values: dict[str, Any] = {}
    if c.name is not None:
        values["name"] = c.name
    if c.grid is not None:
        values["grid"] = _grid(c.grid, row["grid"])
    if c.map_asset_id is not UNCHANGED:
        map_asset_id = c.map_asset_id if isinstance(c.map_asset_id, str) else None
        await _check_map(conn, room_id, map_asset_id)
        values["map_asset_id"] = map_asset_id
    if values:
        await conn.execute(sa.update(scenes).where(scenes.c.id == c.scene_id).values(**values))
    scene = scene_json(await read_scene(conn, room_id, c.scene_id))
    audience = "g;p" if c.scene_id == players_scene else "g"
    return await store(conn, log.history_size, room_id, version, ev.SCENE_UPDATED, c.by, {"scene": scene}, scene,
                       audience)


async def remove_scene(log: Log, conn: AsyncConnection, room_id: str, c: RemoveScene) -> StoredEvent[None]:
    version, players_scene = await next_versions(conn, room_id)
    await read_scene(conn, room_id, c.scene_id)
    if c.scene_id == players_scene:
        raise Conflict("the players are on this scene: move them to another one first", code="scene_in_use")
    await conn.execute(sa.delete(board_tokens).where(board_tokens.c.scene_id == c.scene_id))
    await conn.execute(sa.delete(scenes).where(scenes.c.id == c.scene_id))
    await _update_fog_free(conn, room_id)
    return await store(conn, log.history_size, room_id, version, ev.SCENE_REMOVED, c.by, {"scene_id": c.scene_id},
                       None, "g")


async def visible_tokens(conn: AsyncConnection, scene_id: str) -> list[dict[str, Any]]:
    """The tokens of a scene that players see, were it theirs, in drawing order."""
    rows = (await conn.execute(_STATE.where(board_tokens.c.scene_id == scene_id, board_tokens.c.hidden.is_(False),
                                            board_tokens.c.fogged.is_(False), board_tokens.c.asset_hidden.is_(False))
                               .order_by(board_tokens.c.z_index, board_tokens.c.created_at))).mappings().all()
    return [wire.token(r) for r in rows]


async def activate_scene(log: Log, conn: AsyncConnection, room_id: str, c: ActivateScene) -> StoredEvent[None]:
    version, _ = await next_versions(conn, room_id)
    scene = scene_json(await read_scene(conn, room_id, c.scene_id))
    await conn.execute(sa.update(game_rooms).where(game_rooms.c.id == room_id).values(players_scene_id=c.scene_id))
    tokens = await visible_tokens(conn, c.scene_id)
    players = {"scene_id": c.scene_id, "scene": scene, "tokens": tokens}
    return await store(conn, log.history_size, room_id, version, ev.SCENE_ACTIVATED, c.by, {"scene_id": c.scene_id},
                       None, "g", (("p", ev.SCENE_ACTIVATED, players),))


async def change_fog(log: Log, conn: AsyncConnection, room_id: str, c: ChangeFog) -> StoredEvent[None]:
    version, players_scene = await next_versions(conn, room_id)
    row = (await conn.execute(sa.select(scenes.c.fog, scenes.c.fog_version).where(
        scenes.c.id == c.scene_id, scenes.c.room_id == room_id))).first()
    if row is None:
        raise not_found()
    try:
        fog = fogs.parse_fog(row[0])
        shape = fogs.parse_shape(c.shape) if c.shape is not None else None
        fog.apply(c.op, shape)
    except fogs.FogError as exc:
        if exc.code == "fog_full":
            raise Conflict(str(exc), code="fog_full") from None
        raise ValidationFailed(str(exc), code="invalid_message",
                               details=[{"field": "shape", "problem": str(exc)}]) from None
    fog_version = int(row[1]) + 1
    await conn.execute(sa.update(scenes).where(scenes.c.id == c.scene_id).values(
        fog=fog.to_json(), fog_count=len(fog.shapes), fog_version=fog_version))
    log.fogs.put(c.scene_id, fog, fog_version)
    await _update_fog_free(conn, room_id)
    query = _STATE.where(board_tokens.c.scene_id == c.scene_id)
    if shape is not None:  # only tokens inside the shape change
        query = query.where(board_tokens.c.x.between(shape.min_x, shape.max_x),
                            board_tokens.c.y.between(shape.min_y, shape.max_y))
    added: list[dict[str, Any]] = []
    removed: list[str] = []
    covered: list[str] = []
    uncovered: list[str] = []
    for found in (await conn.execute(query.order_by(board_tokens.c.z_index, board_tokens.c.created_at))
                  ).mappings().all():
        token = dict(found)
        fogged = fogs.fogged_after(c.op, shape, bool(token["fogged"]), float(token["x"]), float(token["y"]))
        if fogged == bool(token["fogged"]):
            continue
        (covered if fogged else uncovered).append(str(token["id"]))
        if c.scene_id == players_scene and seen(token | {"fogged": not fogged}, players_scene) != seen(
                token | {"fogged": fogged}, players_scene):
            if fogged:
                removed.append(str(token["id"]))
            else:
                added.append(wire.token(token))
    for ids, value in ((covered, True), (uncovered, False)):
        for start in range(0, len(ids), 500):
            await conn.execute(sa.update(board_tokens).where(board_tokens.c.id.in_(ids[start : start + 500]))
                               .values(fogged=value))
    payload: dict[str, Any] = {"scene_id": c.scene_id, "op": c.op}
    if shape is not None:
        payload["shape"] = shape.to_json()
    variants: tuple[Variant, ...] = ()
    if c.scene_id == players_scene:
        variants = (("p", ev.FOG_CHANGED, payload | {"tokens_added": added, "tokens_removed": removed}),)
    return await store(conn, log.history_size, room_id, version, ev.FOG_CHANGED, c.by, payload, None,
                       f"g@{c.scene_id}", variants)

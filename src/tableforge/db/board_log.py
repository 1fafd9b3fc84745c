"""Token and asset changes on the transactional path, with their audiences.

Each runs inside the change's transaction, after `next_versions` locked the room row, so what it
reads of the board (the token, its asset, the players' scene, the fog) cannot change under it.
Players see a token when domain/scenes.visible_to_players says so; their view of it before and after
the change decides what they receive (the event, `token.added`, `token.removed` or `room.skip`).
A player changing a token they cannot see is told `token_not_found`, as for an id that never
existed, before any owner or version check, so no error tells them a hidden token is there.
"""

from __future__ import annotations

from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db.changes import (
    AddAsset,
    AddToken,
    MoveToken,
    RemoveAsset,
    RemoveToken,
    SetAssetHidden,
    StoredEvent,
    UpdateToken,
)
from tableforge.db.log_store import FogCache, Variant, next_versions, store, token_routing
from tableforge.db.schema import board_tokens, game_assets, scenes
from tableforge.domain import events as ev
from tableforge.domain import wire
from tableforge.domain.errors import Conflict, Forbidden, NotFound
from tableforge.domain.scenes import visible_to_players


class Log(Protocol):
    history_size: int
    fogs: FogCache


TOKEN_COLUMNS = (board_tokens.c.id, board_tokens.c.asset_id, board_tokens.c.owner_id, board_tokens.c.x,
                 board_tokens.c.y, board_tokens.c.rotation, board_tokens.c.scale, board_tokens.c.z_index,
                 board_tokens.c.version, board_tokens.c.scene_id, board_tokens.c.hidden, board_tokens.c.fogged,
                 board_tokens.c.asset_hidden)
_STATE = sa.select(*TOKEN_COLUMNS)


def seen(row: RowMapping | dict[str, Any], players_scene_id: str) -> bool:
    """Whether players see this token (a row of TOKEN_COLUMNS)."""
    return visible_to_players(str(row["scene_id"]) == players_scene_id, bool(row["hidden"]),
                              bool(row["asset_hidden"]), bool(row["fogged"]))


def not_found() -> NotFound:
    return NotFound("no such token in this room", code="token_not_found")


async def _state(conn: AsyncConnection, room_id: str, token_id: str) -> RowMapping:
    row = (await conn.execute(_STATE.where(board_tokens.c.id == token_id, board_tokens.c.room_id == room_id))
           ).mappings().first()
    if row is None:
        raise not_found()
    return row


def _check(row: RowMapping, players_scene_id: str, owner: str | None, if_version: int | None) -> bool:
    """The guards, in the order that never tells a player more than they may know. Returns whether
    players saw the token before the change."""
    before = seen(row, players_scene_id)
    if owner is not None:  # a player
        if not before:
            raise not_found()
        if owner != (str(row["owner_id"]) if row["owner_id"] else ""):
            raise Forbidden("players may only change their own tokens", code="not_token_owner")
    if if_version is not None and int(row["version"]) != if_version:
        raise Conflict(f"the token changed (version {row['version']}, you had {if_version})", code="conflict",
                       details={"version": int(row["version"])})
    return before


def _flip(flip: str | None, token: dict[str, Any]) -> tuple[Variant, ...]:
    if flip == "added":
        return (("p", ev.TOKEN_ADDED, {"token": token}),)
    if flip == "removed":
        return (("p", ev.TOKEN_REMOVED, {"token_id": token["id"]}),)
    return ()


async def add_token(log: Log, conn: AsyncConnection, room_id: str, c: AddToken) -> StoredEvent[dict[str, Any]]:
    version, players_scene = await next_versions(conn, room_id)
    scene_id = c.scene_id or players_scene
    if not scene_id or (not c.is_gm and scene_id != players_scene):
        raise NotFound("no such scene in this room", code="scene_not_found")
    if c.scene_id is not None and (await conn.execute(sa.select(scenes.c.id).where(
            scenes.c.id == scene_id, scenes.c.room_id == room_id))).first() is None:
        raise NotFound("no such scene in this room", code="scene_not_found")
    asset = (await conn.execute(sa.select(game_assets.c.room_id, game_assets.c.hidden)
                                .where(game_assets.c.id == c.asset_id))).first()
    if asset is None or str(asset[0]) != room_id or (asset[1] and not c.is_gm):
        raise NotFound("no such asset in this room", code="asset_not_found")
    fogged = (await log.fogs.fog(conn, scene_id)).fogged(c.x, c.y)
    await conn.execute(sa.insert(board_tokens).values(
        id=c.token_id, room_id=room_id, asset_id=c.asset_id, owner_id=c.by, x=c.x, y=c.y, rotation=c.rotation,
        scale=c.scale, z_index=c.z_index, version=1, created_at=c.created_at, scene_id=scene_id, hidden=c.hidden,
        fogged=fogged, asset_hidden=bool(asset[1])))
    token = c.token(scene_id)
    visible = visible_to_players(scene_id == players_scene, c.hidden, bool(asset[1]), fogged)
    audience, _ = token_routing(scene_id, None, visible)
    return await store(conn, log.history_size, room_id, version, ev.TOKEN_ADDED, c.by, {"token": token}, token,
                       audience)


async def change_token(log: Log, conn: AsyncConnection, room_id: str, c: MoveToken | UpdateToken
                       ) -> StoredEvent[Any]:
    version, players_scene = await next_versions(conn, room_id)
    row = await _state(conn, room_id, c.token_id)
    before = _check(row, players_scene, c.owner, c.if_version)
    values = {"x": c.x, "y": c.y} if isinstance(c, MoveToken) else dict(c.values)
    if "x" in values or "y" in values:
        fog = await log.fogs.fog(conn, str(row["scene_id"]))
        values["fogged"] = fog.fogged(values.get("x", row["x"]), values.get("y", row["y"]))
    new = (await conn.execute(sa.update(board_tokens).where(board_tokens.c.id == c.token_id)
                              .values(**values, version=board_tokens.c.version + 1)
                              .returning(*TOKEN_COLUMNS))).mappings().one()
    token = wire.token(new)
    after = seen(new, players_scene)
    audience, flip = token_routing(token["scene_id"], before, after)
    if isinstance(c, MoveToken):
        payload = {"token_id": c.token_id, "x": token["x"], "y": token["y"], "token_version": token["version"]}
        return await store(conn, log.history_size, room_id, version, ev.TOKEN_MOVED, c.by, payload,
                           token["version"], audience, _flip(flip, token))
    return await store(conn, log.history_size, room_id, version, ev.TOKEN_UPDATED, c.by, {"token": token}, token,
                       audience, _flip(flip, token))


async def remove_token(log: Log, conn: AsyncConnection, room_id: str, c: RemoveToken) -> StoredEvent[None]:
    version, players_scene = await next_versions(conn, room_id)
    row = await _state(conn, room_id, c.token_id)
    before = _check(row, players_scene, c.owner, c.if_version)
    await conn.execute(sa.delete(board_tokens).where(board_tokens.c.id == c.token_id))
    audience, _ = token_routing(str(row["scene_id"]), before, before)
    return await store(conn, log.history_size, room_id, version, ev.TOKEN_REMOVED, c.by, {"token_id": c.token_id},
                       None, audience)


async def add_asset(log: Log, conn: AsyncConnection, room_id: str, c: AddAsset) -> StoredEvent[None]:
    version, _ = await next_versions(conn, room_id)
    await conn.execute(sa.insert(game_assets).values(**c.row))
    audience = "g" if c.row.get("hidden") else None
    return await store(conn, log.history_size, room_id, version, ev.ASSET_ADDED, c.by, {"asset": c.asset}, None,
                       audience)


async def remove_asset(log: Log, conn: AsyncConnection, room_id: str, c: RemoveAsset) -> StoredEvent[bool]:
    rows = (await conn.execute(_STATE.where(board_tokens.c.asset_id == c.asset_id)
                               .order_by(board_tokens.c.created_at))).mappings().all()
    version, players_scene = await next_versions(conn, room_id, len(rows) + 1)
    hidden = bool((await conn.execute(sa.select(game_assets.c.hidden).where(game_assets.c.id == c.asset_id)))
                  .scalar())
    await conn.execute(sa.delete(board_tokens).where(board_tokens.c.asset_id == c.asset_id))
    await conn.execute(sa.delete(game_assets).where(game_assets.c.id == c.asset_id))
    earlier = []
    for offset, row in enumerate(rows):
        was = seen(row, players_scene)
        audience, _ = token_routing(str(row["scene_id"]), was, was)
        earlier.append(await store(conn, log.history_size, room_id, version + offset, ev.TOKEN_REMOVED, c.by,
                                   {"token_id": str(row["id"])}, None, audience))
    still_used = (await conn.execute(sa.select(sa.func.count()).where(game_assets.c.sha256 == c.sha256))).scalar()
    last = await store(conn, log.history_size, room_id, version + len(rows), ev.ASSET_REMOVED, c.by,
                       {"asset_id": c.asset_id}, bool(still_used), "g" if hidden else None)
    last.earlier = tuple(earlier)
    return last


async def set_asset_hidden(log: Log, conn: AsyncConnection, room_id: str, c: SetAssetHidden
                           ) -> StoredEvent[dict[str, Any]]:
    version, players_scene = await next_versions(conn, room_id)
    was = (await conn.execute(sa.select(game_assets.c.hidden).where(
        game_assets.c.id == c.asset_id, game_assets.c.room_id == room_id))).first()
    if was is None:
        raise NotFound("no such asset in this room", code="asset_not_found")
    await conn.execute(sa.update(game_assets).where(game_assets.c.id == c.asset_id).values(hidden=c.hidden))
    await conn.execute(sa.update(board_tokens).where(board_tokens.c.asset_id == c.asset_id)
                       .values(asset_hidden=c.hidden))
    asset = c.asset | {"hidden": c.hidden}
    variants: tuple[Variant, ...] = ()
    if bool(was[0]) != c.hidden:
        if c.hidden:
            variants = (("p", ev.ASSET_REMOVED, {"asset_id": c.asset_id}),)
        else:
            uncovered = (await conn.execute(sa.select(*TOKEN_COLUMNS).where(
                board_tokens.c.asset_id == c.asset_id, board_tokens.c.scene_id == players_scene,
                board_tokens.c.hidden.is_(False), board_tokens.c.fogged.is_(False))
                .order_by(board_tokens.c.z_index, board_tokens.c.created_at))).mappings().all()
            variants = (("p", ev.ASSET_ADDED, {"asset": asset, "tokens": [wire.token(t) for t in uncovered]}),)
    return await store(conn, log.history_size, room_id, version, ev.ASSET_UPDATED, c.by, {"asset": asset}, asset,
                       "g", variants)

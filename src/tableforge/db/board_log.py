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
    ChangeConditions,
    MoveToken,
    RemoveAsset,
    RemoveToken,
    SetAssetHidden,
    SetBar,
    StoredEvent,
    UpdateToken,
)
from tableforge.db.log_store import (
    RESERVE,
    FogCache,
    ReservedMove,
    Variant,
    next_versions,
    refuse,
    reserve_move,
    reserve_one,
    store,
    token_routing,
)
from tableforge.db.schema import board_tokens, game_assets, game_rooms, game_systems, scenes
from tableforge.db.token_views import routed
from tableforge.db.undo_entry import Entry
from tableforge.domain import events as ev
from tableforge.domain import token_fields, wire
from tableforge.domain.errors import Conflict, Forbidden, NotFound
from tableforge.domain.scenes import visible_to_players
from tableforge.domain.token_fields import GM_ONLY, LEVEL_PLAYER, for_level


class Log(Protocol):
    history_size: int
    fogs: FogCache


TOKEN_COLUMNS = (board_tokens.c.id, board_tokens.c.asset_id, board_tokens.c.owner_id, board_tokens.c.x,
                 board_tokens.c.y, board_tokens.c.rotation, board_tokens.c.scale, board_tokens.c.z_index,
                 board_tokens.c.version, board_tokens.c.scene_id, board_tokens.c.hidden, board_tokens.c.fogged,
                 board_tokens.c.asset_hidden, board_tokens.c.name, board_tokens.c.size, board_tokens.c.bars,
                 board_tokens.c.conditions, board_tokens.c.name_visibility, board_tokens.c.conditions_visibility)
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


# What an add needs to know of the board, read after the room is locked (asset_room None: no such
# asset; scene_ok None: the scene given is not the room's; fog_version None: no such scene). One
# statement of scalar subqueries: on SQLite (one writer, nothing changes between statements) it rides
# on the reservation's RETURNING; on PostgreSQL it is a statement of its own, after the room lock,
# whose snapshot sees every change committed before the lock was granted (the reservation's own
# snapshot predates that wait, so its RETURNING could read an asset hidden meanwhile as visible).
_PLAYERS_SCENE = sa.select(game_rooms.c.players_scene_id).where(game_rooms.c.id == sa.bindparam("room"))
_ADD_READS = (
    sa.select(game_assets.c.room_id).where(game_assets.c.id == sa.bindparam("asset")).scalar_subquery(),
    sa.select(game_assets.c.hidden).where(game_assets.c.id == sa.bindparam("asset")).scalar_subquery(),
    sa.select(scenes.c.id).where(scenes.c.id == sa.bindparam("scene", type_=scenes.c.id.type),
                                 scenes.c.room_id == sa.bindparam("room"))
    .scalar_subquery(),
    sa.select(scenes.c.fog_version).where(scenes.c.id == sa.func.coalesce(
        sa.bindparam("scene", type_=scenes.c.id.type), _PLAYERS_SCENE.scalar_subquery())).scalar_subquery(),
)
# The room's game system's template (no row: the room has none).
TEMPLATE = (sa.select(game_systems.c.template)
            .select_from(game_rooms.join(game_systems, game_systems.c.id == game_rooms.c.game_system_id))
            .where(game_rooms.c.id == sa.bindparam("room_id")))
# The same for an add that takes the defaults, nested rather than joined: SQLAlchemy writes the
# columns of a RETURNING's subqueries without their table, and one table per FROM keeps them unambiguous.
_ADD_TEMPLATE = sa.select(game_systems.c.template).where(game_systems.c.id == sa.select(
    game_rooms.c.game_system_id).where(game_rooms.c.id == sa.bindparam("room")).scalar_subquery())
_READS = {t: sa.select(*_ADD_READS, *((_ADD_TEMPLATE.scalar_subquery(),) if t else ())) for t in (False, True)}
_RESERVE_AND_READ = {t: RESERVE.returning(*_ADD_READS, *((_ADD_TEMPLATE.scalar_subquery(),) if t else ()))
                     for t in (False, True)}


Defaults = tuple[float | None, list[dict[str, Any]]]  # token_fields.defaults: (size, bars) of a template
NO_DEFAULTS: Defaults = (None, [])


def character(c: AddToken, defaults: Defaults) -> dict[str, Any]:
    """A new token's character columns: what the change gives, else the room's game system's
    token_defaults (`defaults`, token_fields.defaults of its template), else none."""
    size = c.size if c.size is not None else (defaults[0] or 1.0)
    bars = c.bars if c.bars is not None else defaults[1]
    return {"name": c.fields.get("name", ""), "size": size, "bars": bars or None,
            "conditions": c.fields.get("conditions") or None,
            "name_visibility": c.fields.get("name_visibility", "everyone"),
            "conditions_visibility": c.fields.get("conditions_visibility", "everyone")}


def needs_template(c: AddToken) -> bool:
    return c.size is None or c.bars is None


def _whole(token: dict[str, Any]) -> dict[str, Any]:
    return {"token": token}


def added_routing(token: dict[str, Any], visible: bool) -> tuple[str, tuple[Variant, ...]]:
    """token.added's audience and per-audience copies (the one-statement add on PostgreSQL stores
    the same, db/pg_token_add.py)."""
    return routed(token, None, visible, ev.TOKEN_ADDED, _whole)


def add_undo(c: AddToken) -> Entry | None:
    return Entry.of(ev.TOKEN_ADDED, c.token_id, 1, {}) if c.undoable else None


def scene_not_found() -> NotFound:
    return NotFound("no such scene in this room", code="scene_not_found")


def asset_not_found() -> NotFound:
    return NotFound("no such asset in this room", code="asset_not_found")


async def add_token(log: Log, conn: AsyncConnection, room_id: str, c: AddToken) -> StoredEvent[dict[str, Any]]:
    """The room reserved and the board read (one statement on SQLite, two on PostgreSQL), the fog
    read only on a room with fog (and then only its version, unless it changed), the token, the event."""
    params = {"room": room_id, "count": 1, "asset": c.asset_id, "scene": c.scene_id}
    with_template = needs_template(c)
    if conn.dialect.name == "sqlite":
        row = (await conn.execute(_RESERVE_AND_READ[with_template], params)).first()
        if row is None:
            await refuse(conn, room_id)
        version, players_scene, fog_free, read = int(row[0]), str(row[1]) if row[1] else "", bool(row[2]), row[3:]
    else:
        version, players_scene, fog_free = await reserve_one(conn, room_id)
        read = (await conn.execute(_READS[with_template], params)).one()
    asset_room, asset_hidden, scene_ok, fog_version = read[:4]
    scene_id = c.scene_id or players_scene
    if not scene_id or (not c.is_gm and scene_id != players_scene) or (c.scene_id is not None and scene_ok is None):
        raise scene_not_found()
    if asset_room is None or str(asset_room) != room_id or (asset_hidden and not c.is_gm):
        raise asset_not_found()
    fogged = False
    if not fog_free and fog_version is not None:
        fogged = (await log.fogs.fog_at(conn, scene_id, int(fog_version))).fogged(c.x, c.y)
    columns = character(c, token_fields.defaults(read[4]) if with_template else NO_DEFAULTS)
    await conn.execute(sa.insert(board_tokens).values(
        id=c.token_id, room_id=room_id, asset_id=c.asset_id, owner_id=c.by, x=c.x, y=c.y, rotation=c.rotation,
        scale=c.scale, z_index=c.z_index, version=1, created_at=c.created_at, scene_id=scene_id, hidden=c.hidden,
        fogged=fogged, asset_hidden=bool(asset_hidden), **columns))
    token = c.token(scene_id, columns)
    visible = visible_to_players(scene_id == players_scene, c.hidden, bool(asset_hidden), fogged)
    audience, variants = added_routing(token, visible)
    return await store(conn, log.history_size, room_id, version, ev.TOKEN_ADDED, c.by, {"token": token}, token,
                       audience, variants, add_undo(c))


def _lean_move_sql(owner_guard: bool) -> sa.Update:
    """A move's token update with its guards in the WHERE clause (what `_check` decides, when it
    says yes): a player moves only their own token, and only one players see. The version guard is
    the version the reservation read with the token's position (`reserve_move`): the position the
    undo entry restores is the one this update replaced (on PostgreSQL, a change committed while the
    reservation waited for the room lock makes it refuse; the full path then reads afresh)."""
    t = board_tokens.c
    query = sa.update(board_tokens).where(t.id == sa.bindparam("token"), t.room_id == sa.bindparam("room"),
                                          t.version == sa.bindparam("was"))
    if owner_guard:
        query = query.where(t.owner_id == sa.bindparam("owner"), t.scene_id == sa.bindparam("players_scene"),
                            t.hidden.is_(False), t.fogged.is_(False), t.asset_hidden.is_(False))
    return (query.values(x=sa.bindparam("x"), y=sa.bindparam("y"), version=t.version + 1)
            .returning(t.version, t.scene_id, t.hidden, t.fogged, t.asset_hidden))


_LEAN_MOVE = {o: _lean_move_sql(o) for o in (False, True)}


async def _lean_move(log: Log, conn: AsyncConnection, room_id: str, c: MoveToken, reserved: ReservedMove
                     ) -> StoredEvent[int] | None:
    """A move on a room without fog, once its version is reserved: the token updated with its guards
    in one statement (no read before, no fog), so nobody's view of it changes and the event goes to
    whoever sees the token. None when a guard refused: the caller explains it, in this transaction."""
    if reserved.token is None or (c.if_version is not None and c.if_version != reserved.token[2]):
        return None
    was_x, was_y, was = reserved.token
    params = {"token": c.token_id, "room": room_id, "x": c.x, "y": c.y, "owner": c.owner,
              "players_scene": reserved.players_scene_id, "was": was}
    new = (await conn.execute(_LEAN_MOVE[c.owner is not None], params)).first()
    if new is None:
        return None
    token_version, scene_id = int(new[0]), str(new[1])
    seen_now = visible_to_players(scene_id == reserved.players_scene_id, bool(new[2]), bool(new[4]), bool(new[3]))
    audience, _ = token_routing(scene_id, seen_now, seen_now)
    payload = {"token_id": c.token_id, "x": float(c.x), "y": float(c.y), "token_version": token_version}
    undo = Entry.of(ev.TOKEN_MOVED, c.token_id, token_version, {"x": was_x, "y": was_y}) if c.undoable else None
    return await store(conn, log.history_size, room_id, reserved.version, ev.TOKEN_MOVED, c.by, payload,
                       token_version, audience, undo=undo)


async def change_token(log: Log, conn: AsyncConnection, room_id: str, c: MoveToken | UpdateToken
                       ) -> StoredEvent[Any]:
    fog_free = False
    if isinstance(c, MoveToken):  # the hot path of play (SQLite; PostgreSQL's fallback)
        reserved = await reserve_move(conn, room_id, c.token_id)
        version, players_scene, fog_free = reserved.version, reserved.players_scene_id, reserved.fog_free
        if fog_free:
            lean = await _lean_move(log, conn, room_id, c, reserved)
            if lean is not None:
                return lean
    else:
        version, players_scene = await next_versions(conn, room_id)
    row = await _state(conn, room_id, c.token_id)
    before = _check(row, players_scene, c.owner, c.if_version)
    values = {"x": c.x, "y": c.y} if isinstance(c, MoveToken) else dict(c.values)
    if c.owner is not None and (("name" in values and row["name_visibility"] == GM_ONLY)
                                or ("conditions" in values and row["conditions_visibility"] == GM_ONLY)):
        raise Forbidden("only the GM may change this field of the token", code="not_gm")
    if fog_free:
        values["fogged"] = False
    elif "x" in values or "y" in values:
        fog = await log.fogs.fog(conn, str(row["scene_id"]))
        values["fogged"] = fog.fogged(values.get("x", row["x"]), values.get("y", row["y"]))
    new = (await conn.execute(sa.update(board_tokens).where(board_tokens.c.id == c.token_id)
                              .values(**values, version=board_tokens.c.version + 1)
                              .returning(*TOKEN_COLUMNS))).mappings().one()
    after = seen(new, players_scene)
    if isinstance(c, MoveToken):
        token_version = int(new["version"])
        payload = {"token_id": c.token_id, "x": float(new["x"]), "y": float(new["y"]), "token_version": token_version}
        if before == after:  # the usual move: no copy of the token is needed (the hot path stays lean)
            audience, _ = token_routing(str(new["scene_id"]), before, after)
            variants: tuple[Variant, ...] = ()
        else:
            audience, variants = routed(wire.token(new), before, after, ev.TOKEN_MOVED, lambda _: payload,
                                        carries_fields=False)
        undo = Entry.of(ev.TOKEN_MOVED, c.token_id, token_version, {"x": float(row["x"]), "y": float(row["y"])})
        return await store(conn, log.history_size, room_id, version, ev.TOKEN_MOVED, c.by, payload,
                           token_version, audience, variants, undo if c.undoable else None)
    token = wire.token(new)
    audience, variants = routed(token, before, after, ev.TOKEN_UPDATED, _whole)
    undo = Entry.of(ev.TOKEN_UPDATED, c.token_id, int(new["version"]), {k: row[k] for k in c.values})
    return await store(conn, log.history_size, room_id, version, ev.TOKEN_UPDATED, c.by, {"token": token}, token,
                       audience, variants, undo if c.undoable else None)


async def set_bar(log: Log, conn: AsyncConnection, room_id: str, c: SetBar) -> StoredEvent[dict[str, Any]]:
    """token.bar_changed {token_id, token_version, bar}: those who may not see the bar get it without
    `bar` (the token's version still rises for them, so their next `if_version` is right)."""
    version, players_scene = await next_versions(conn, room_id)
    row = await _state(conn, room_id, c.token_id)
    before = _check(row, players_scene, c.owner, c.if_version)
    old_bars = list(row["bars"] or [])
    bars, _ = token_fields.set_bar(old_bars, c.key, c.value, c.top, c.level)
    token = await _save(conn, c.token_id, {"bars": bars})
    old = next(b for b in old_bars if b["key"] == c.key)  # set_bar found it
    undo = Entry.of(ev.TOKEN_BAR_CHANGED, c.token_id, token["version"],
                    {"key": c.key, "value": old["value"], "max": old.get("max")}) if c.undoable else None

    def payload(copy: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"token_id": copy["id"], "token_version": copy["version"]}
        bar = next((b for b in copy["bars"] if b["key"] == c.key), None)
        if bar is not None:
            out["bar"] = bar
        return out

    audience, variants = routed(token, before, before, ev.TOKEN_BAR_CHANGED, payload)
    return await store(conn, log.history_size, room_id, version, ev.TOKEN_BAR_CHANGED, c.by, payload(token), token,
                       audience, variants, undo)


async def change_conditions(log: Log, conn: AsyncConnection, room_id: str, c: ChangeConditions
                            ) -> StoredEvent[dict[str, Any]]:
    """token.conditions_changed {token_id, token_version, conditions}: without `conditions` for those
    who may not see them."""
    version, players_scene = await next_versions(conn, room_id)
    row = await _state(conn, room_id, c.token_id)
    before = _check(row, players_scene, c.owner, c.if_version)
    conditions = token_fields.change_conditions(list(row["conditions"] or []), str(row["conditions_visibility"]),
                                                c.level, list(c.add), list(c.remove))
    token = await _save(conn, c.token_id, {"conditions": conditions or None})
    undo = Entry.of(ev.TOKEN_CONDITIONS_CHANGED, c.token_id, token["version"],
                    {"before": list(row["conditions"] or []), "after": conditions}) if c.undoable else None

    def payload(copy: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"token_id": copy["id"], "token_version": copy["version"]}
        if "conditions" in copy["visibility"]:
            out["conditions"] = copy["conditions"]
        return out

    audience, variants = routed(token, before, before, ev.TOKEN_CONDITIONS_CHANGED, payload)
    return await store(conn, log.history_size, room_id, version, ev.TOKEN_CONDITIONS_CHANGED, c.by, payload(token),
                       token, audience, variants, undo)


async def _save(conn: AsyncConnection, token_id: str, values: dict[str, Any]) -> dict[str, Any]:
    new = (await conn.execute(sa.update(board_tokens).where(board_tokens.c.id == token_id)
                              .values(**values, version=board_tokens.c.version + 1)
                              .returning(*TOKEN_COLUMNS))).mappings().one()
    return wire.token(new)


async def remove_token(log: Log, conn: AsyncConnection, room_id: str, c: RemoveToken) -> StoredEvent[None]:
    version, players_scene = await next_versions(conn, room_id)
    row = await _state(conn, room_id, c.token_id)
    before = _check(row, players_scene, c.owner, c.if_version)
    undo = None
    if c.undoable:  # the whole row, to put the token back as it was (its creation time keeps its place)
        created = (await conn.execute(sa.select(board_tokens.c.created_at).where(board_tokens.c.id == c.token_id))
                   ).scalar_one()
        kept = {str(k): row[k] for k in row if k not in ("fogged", "asset_hidden")}
        undo = Entry.of(ev.TOKEN_REMOVED, c.token_id, int(row["version"]) + 1,
                        {"row": kept | {"created_at": created.isoformat()}})
    await conn.execute(sa.delete(board_tokens).where(board_tokens.c.id == c.token_id))
    audience, _ = token_routing(str(row["scene_id"]), before, before)
    return await store(conn, log.history_size, room_id, version, ev.TOKEN_REMOVED, c.by, {"token_id": c.token_id},
                       None, audience, undo=undo)


async def add_asset(log: Log, conn: AsyncConnection, room_id: str, c: AddAsset) -> StoredEvent[None]:
    version, _ = await next_versions(conn, room_id)
    await conn.execute(sa.insert(game_assets).values(**c.row))
    audience = "g" if c.row.get("hidden") else None
    return await store(conn, log.history_size, room_id, version, ev.ASSET_ADDED, c.by, {"asset": c.asset}, None,
                       audience)


async def remove_asset(log: Log, conn: AsyncConnection, room_id: str, c: RemoveAsset) -> StoredEvent[bool]:
    # The room row is locked before its tokens are read (as every change locks it first), so what
    # players see of each token cannot change between this read and the events (SQLite: one writer).
    await conn.execute(sa.select(game_rooms.c.id).where(game_rooms.c.id == room_id).with_for_update())
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
                       {"asset_id": c.asset_id, "reason": "deleted"}, bool(still_used), "g" if hidden else None)
    last.earlier = tuple(earlier)
    return last


async def set_asset_hidden(log: Log, conn: AsyncConnection, room_id: str, c: SetAssetHidden
                           ) -> StoredEvent[dict[str, Any]]:
    version, players_scene = await next_versions(conn, room_id)
    was = (await conn.execute(sa.select(game_assets.c.hidden).where(
        game_assets.c.id == c.asset_id, game_assets.c.room_id == room_id))).first()
    if was is None:
        raise asset_not_found()
    await conn.execute(sa.update(game_assets).where(game_assets.c.id == c.asset_id).values(hidden=c.hidden))
    await conn.execute(sa.update(board_tokens).where(board_tokens.c.asset_id == c.asset_id)
                       .values(asset_hidden=c.hidden))
    asset = c.asset | {"hidden": c.hidden}
    variants: tuple[Variant, ...] = ()
    if bool(was[0]) != c.hidden:
        if c.hidden:
            # `reason`: a hidden asset that is the players' scene's map stays their map (docs/protocol.md)
            variants = (("p", ev.ASSET_REMOVED, {"asset_id": c.asset_id, "reason": "hidden"}),)
        else:
            uncovered = (await conn.execute(sa.select(*TOKEN_COLUMNS).where(
                board_tokens.c.asset_id == c.asset_id, board_tokens.c.scene_id == players_scene,
                board_tokens.c.hidden.is_(False), board_tokens.c.fogged.is_(False))
                .order_by(board_tokens.c.z_index, board_tokens.c.created_at))).mappings().all()
            variants = (("p", ev.ASSET_ADDED, {"asset": asset, "tokens": [for_level(wire.token(t), LEVEL_PLAYER)
                                                                   for t in uncovered]}),)
    return await store(conn, log.history_size, room_id, version, ev.ASSET_UPDATED, c.by, {"asset": asset}, asset,
                       "g", variants)

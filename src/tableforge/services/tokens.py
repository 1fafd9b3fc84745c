"""Tokens on the board: the hot path of play.

Each change goes to the room event log (`rt.events.append`): applied with its permission and
`if_version` guards and stored with its event in one atomic unit (one statement for a move on
PostgreSQL, a transaction otherwise). The ack and the event follow, so an acked change is durable
before anyone sees it. Moves are not coalesced: each one is durable before its ack.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from tableforge.db.changes import (
    AddToken,
    ChangeConditions,
    MoveToken,
    RemoveToken,
    SetBar,
    StoredEvent,
    UndoLast,
    UpdateToken,
)
from tableforge.db.schema import board_tokens, game_rooms, scenes
from tableforge.domain import events as ev
from tableforge.domain import token_fields as tf
from tableforge.domain.audience import Routing, View
from tableforge.domain.errors import AppError, Forbidden, NotFound
from tableforge.domain.fog import Fog, parse_fog
from tableforge.domain.roles import GM, can_change_token, require_actor, require_gm
from tableforge.observability import metrics
from tableforge.realtime.connection import Connection
from tableforge.realtime.room_tokens import Lookup, Token
from tableforge.services import replies
from tableforge.services.runtime import Runtime


async def _publish(rt: Runtime, room_id: str, stored: StoredEvent[Any], sender: Connection | None) -> None:
    await rt.hub.publish(room_id, stored.version, stored.ts, sender, stored.body, stored.routing)


def _mine(token: dict[str, Any], role: str, user_id: str) -> dict[str, Any]:
    """The token as the caller may see it (an ack or an HTTP reply is an audience of one)."""
    return tf.for_level(token, tf.level_of(role == GM, user_id, token.get("owner_id")))


def character(values: dict[str, Any], role: str) -> dict[str, Any]:
    """The character fields of `token.add`/`token.update` checked, as columns. Bars and every
    visibility are the GM's to set: a player could otherwise hide a field from the GM's rules."""
    out: dict[str, Any] = {}
    if values.get("name") is not None:
        out["name"] = tf.check_name(values["name"])
    if values.get("size") is not None:
        out["size"] = tf.check_size(values["size"])
    if values.get("conditions") is not None:
        out["conditions"] = tf.check_conditions(values["conditions"]) or None
    if values.get("bars") is not None:
        require_gm(role)
        out["bars"] = tf.check_bars(values["bars"]) or None
    for field in ("name_visibility", "conditions_visibility"):
        if values.get(field) is not None:
            require_gm(role)
            out[field] = tf.check_visibility(values[field], field)
    return out


async def add(rt: Runtime, user_id: str, room_id: str, asset_id: str, x: float, y: float, rotation: float,
              scale: float, z_index: int, sender: Connection | None = None, *, role: str = GM,
              scene_id: str | None = None, hidden: bool = False, fields: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], int]:
    """token.add: `scene_id` None is the players' scene; `hidden` (the GM layer) is for GMs only.
    `fields`: the character fields (name, size, bars, conditions, visibilities); bars and size not
    given come from the room's game system's token_defaults."""
    require_actor(role)
    if hidden:
        require_gm(role)
    columns = character(fields or {}, role)
    size, bars = columns.pop("size", None), columns.pop("bars", None)
    if fields and fields.get("bars") == []:
        bars = []  # explicitly none: not the template's
    stored = await rt.events.append(room_id, AddToken(user_id, replies.new_id(), asset_id, x, y, rotation, scale,
                                                      z_index, replies.now(), scene_id, hidden, role == GM,
                                                      columns, size, bars))
    await _publish(rt, room_id, stored, sender)
    return _mine(stored.result, role, user_id), stored.version


async def change(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, values: dict[str, Any],
                 if_version: int | None, sender: Connection | None = None) -> tuple[dict[str, Any], int]:
    """token.update: returns the token after the change and the room version."""
    require_actor(role)
    if "hidden" in values:
        require_gm(role)
    owner = None if role == GM else user_id
    values = {k: v for k, v in values.items() if k not in tf.CHARACTER_FIELDS} | character(values, role)
    stored = await rt.events.append(room_id, UpdateToken(user_id, token_id, values, owner, if_version))
    await _publish(rt, room_id, stored, sender)
    return _mine(stored.result, role, user_id), stored.version


async def set_bar(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, key: str, value: int | None,
                  top: int | str | None, if_version: int | None, sender: Connection | None = None
                  ) -> tuple[dict[str, Any], int]:
    """token.bar: (the token as the caller sees it, the room version)."""
    require_actor(role)
    owner = None if role == GM else user_id
    level = tf.LEVEL_GM if role == GM else tf.LEVEL_OWNER
    stored = await rt.events.append(room_id, SetBar(user_id, token_id, key, value, top, owner, if_version, level))
    await _publish(rt, room_id, stored, sender)
    return _mine(stored.result, role, user_id), stored.version


async def change_conditions(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, add: list[str],
                            remove: list[str], if_version: int | None, sender: Connection | None = None
                            ) -> tuple[dict[str, Any], int]:
    """token.condition: (the token, the room version)."""
    require_actor(role)
    owner = None if role == GM else user_id
    level = tf.LEVEL_GM if role == GM else tf.LEVEL_OWNER
    stored = await rt.events.append(room_id, ChangeConditions(user_id, token_id, tuple(add), tuple(remove), owner,
                                                              if_version, level))
    await _publish(rt, room_id, stored, sender)
    return _mine(stored.result, role, user_id), stored.version


async def move(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, x: float, y: float,
               if_version: int | None, sender: Connection | None = None) -> tuple[int, int]:
    """token.move: returns (room version, token version) once the move and its event are durable."""
    require_actor(role)
    owner = None if role == GM else user_id
    stored = await rt.events.append(room_id, MoveToken(user_id, token_id, x, y, owner, if_version))
    await _publish(rt, room_id, stored, sender)
    return stored.version, stored.result


async def remove(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, if_version: int | None,
                 sender: Connection | None = None) -> int:
    require_actor(role)
    owner = None if role == GM else user_id
    stored = await rt.events.append(room_id, RemoveToken(user_id, token_id, owner, if_version))
    await _publish(rt, room_id, stored, sender)
    return stored.version


async def undo(rt: Runtime, user_id: str, role: str, room_id: str) -> tuple[dict[str, Any], int]:
    """undo: the caller's last undoable token change in the room, inverted (db/undo_log.py).
    Returns ({type, token_id} of the change undone, the room version of the inverse).

    The inverse is published to the undoing socket too (no sender is left out): the ack does not
    carry the token's new state, so the page applies the event like anyone else's."""
    require_actor(role)
    owner = None if role == GM else user_id
    level = tf.LEVEL_GM if role == GM else tf.LEVEL_OWNER
    try:
        stored = await rt.events.append(room_id, UndoLast(user_id, owner, level))
    except AppError as exc:
        metrics.UNDO_BY_OUTCOME[exc.code if exc.code in ("nothing_to_undo", "undo_conflict") else "refused"].inc()
        raise
    metrics.UNDO_BY_OUTCOME["undone"].inc()
    await _publish(rt, room_id, stored, None)
    return stored.result, stored.version


# The room version, its players' scene and its tokens (owner, scene, whether players see them) in one
# statement (one snapshot): what the preview index (realtime/room_tokens.py) starts from. A closed or
# deleted room reads as version 0, no tokens.
_SEEN = sa.and_(board_tokens.c.scene_id == game_rooms.c.players_scene_id, board_tokens.c.hidden.is_(False),
                board_tokens.c.fogged.is_(False), board_tokens.c.asset_hidden.is_(False))
_BOARD = (
    sa.select(game_rooms.c.version, game_rooms.c.players_scene_id, board_tokens.c.id, board_tokens.c.owner_id,
              board_tokens.c.scene_id, _SEEN)
    .select_from(game_rooms.outerjoin(board_tokens, board_tokens.c.room_id == game_rooms.c.id))
    .where(game_rooms.c.id == sa.bindparam("room_id"))
    .limit(sa.bindparam("limit"))
)


async def load_board(rt: Runtime, room_id: str) -> tuple[int, list[tuple[str, str | None, str, bool]], str]:
    async with rt.db.read() as conn:
        rows = (await conn.execute(_BOARD, {"room_id": room_id, "limit": rt.room_tokens.max_tokens + 1})).all()
    if not rows:
        return 0, [], ""
    return (int(rows[0][0]), [(str(t), str(o) if o else None, str(s), bool(v)) for _, _, t, o, s, v in rows
                              if t is not None], str(rows[0][1]))


async def _token_in_db(rt: Runtime, room_id: str, token_id: str) -> Token | Lookup:
    """One token: only for rooms too big for the index."""
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(board_tokens.c.owner_id, board_tokens.c.scene_id, _SEEN)
                                  .select_from(board_tokens.join(game_rooms, game_rooms.c.id == board_tokens.c.room_id))
                                  .where(board_tokens.c.id == token_id, board_tokens.c.room_id == room_id))).first()
    if row is None:
        return Lookup.MISSING
    return Token(str(row[0]) if row[0] else None, str(row[1]), bool(row[2]))


async def _load_fog(rt: Runtime, scene_id: str) -> Fog:
    async with rt.db.read() as conn:
        raw = (await conn.execute(sa.select(scenes.c.fog).where(scenes.c.id == scene_id))).scalar()
    return parse_fog(raw)


async def fogged(rt: Runtime, room_id: str, scene_id: str, x: float, y: float) -> bool:
    fog = await rt.room_tokens.fog(room_id, scene_id, lambda: load_board(rt, room_id), lambda: _load_fog(rt, scene_id))
    return fog.fogged(x, y)


def _movable(role: str, user_id: str, found: Token | Lookup) -> Token:
    """`move`'s checks on a preview's token, with its codes."""
    if isinstance(found, Lookup) or (role != GM and not found.seen):  # MISSING (the db never answers UNKNOWN)
        raise NotFound("no such token in this room", code="token_not_found")
    if not can_change_token(role, user_id, found.owner or ""):
        raise Forbidden("players may only change their own tokens", code="not_token_owner")
    return found


async def preview_move(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, x: float, y: float,
                       sender: Connection) -> None:
    """A preview `token.move` (a frame of a drag): relayed only if the sender could commit it, the
    same checks and codes as `move`, answered from the room's token index, not the database. It goes
    to the GMs viewing the token's scene, and to the players only if they see the token and its
    preview position is not under fog."""
    require_actor(role)
    found = await rt.room_tokens.token(room_id, token_id, lambda: load_board(rt, room_id))
    if found is Lookup.UNKNOWN:
        found = await _token_in_db(rt, room_id, token_id)
    token = _movable(role, user_id, found)
    audience = f"g@{token.scene_id}"
    if token.seen and not await fogged(rt, room_id, token.scene_id, x, y):
        audience += ";p"
    relay(rt, user_id, room_id, ev.TOKEN_MOVING, {"token_id": token_id, "x": x, "y": y}, sender, audience)


def preview_move_now(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, x: float, y: float,
                     sender: Connection) -> bool:
    """`preview_move` without waiting, when the room's token index already holds the token and its
    scene's fog (the usual case after a drag's first frame); False, with nothing done, when it does
    not: call `preview_move`. The same checks, errors and audience."""
    require_actor(role)
    found = rt.room_tokens.token_now(room_id, token_id)
    if found is None or found is Lookup.UNKNOWN:
        return False
    token = _movable(role, user_id, found)
    audience = f"g@{token.scene_id}"
    if token.seen:
        fog = rt.room_tokens.fog_now(room_id, token.scene_id)
        if fog is None:
            return False
        if not fog.fogged(x, y):
            audience += ";p"
    relay(rt, user_id, room_id, ev.TOKEN_MOVING, {"token_id": token_id, "x": x, "y": y}, sender, audience)
    return True


async def pointer(rt: Runtime, view: View, room_id: str, x: float, y: float, sender: Connection) -> None:
    """A pointer goes to whoever views the scene it is on: a GM's on another scene, or over fog, to
    the GMs of that scene only."""
    require_actor(view.role)
    players_scene = await rt.room_tokens.players_scene(room_id, lambda: load_board(rt, room_id))
    scene = view.scene_id if view.is_gm and view.scene_id else players_scene
    audience = f"g@{scene}"
    if scene == players_scene and not (view.is_gm and await fogged(rt, room_id, scene, x, y)):
        audience += ";p"
    relay(rt, view.user_id, room_id, ev.POINTER, {"user_id": view.user_id, "x": x, "y": y}, sender, audience)


def pointer_now(rt: Runtime, view: View, room_id: str, x: float, y: float, sender: Connection) -> bool:
    """`pointer` without waiting when the room's index knows what it needs (False: call `pointer`)."""
    require_actor(view.role)
    players_scene = rt.room_tokens.players_scene_now(room_id)
    if players_scene is None:
        return False
    scene = view.scene_id if view.is_gm and view.scene_id else players_scene
    audience = f"g@{scene}"
    if scene == players_scene:
        fog = rt.room_tokens.fog_now(room_id, scene) if view.is_gm else None
        if view.is_gm and fog is None:
            return False
        if fog is None or not fog.fogged(x, y):
            audience += ";p"
    relay(rt, view.user_id, room_id, ev.POINTER, {"user_id": view.user_id, "x": x, "y": y}, sender, audience)
    return True


def relay(rt: Runtime, user_id: str, room_id: str, etype: str, payload: dict[str, Any], sender: Connection,
          audience: str | None = None) -> None:
    """Ephemeral: relayed to `audience` (None: the room) through the broker, never stored, no version."""
    now = replies.now_ms()
    body = orjson.dumps({"type": etype, "room_id": room_id, "ts": now, "by": user_id, **payload})
    rt.hub.relay(room_id, now, sender, body, Routing(audience))

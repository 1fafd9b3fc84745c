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

from tableforge.db.event_log import AddToken, MoveToken, RemoveToken, UpdateToken
from tableforge.db.schema import board_tokens, game_rooms
from tableforge.domain import events as ev
from tableforge.domain.errors import Forbidden, NotFound
from tableforge.domain.roles import GM, can_change_token
from tableforge.realtime.connection import Connection
from tableforge.realtime.room_tokens import Lookup
from tableforge.services import replies
from tableforge.services.runtime import Runtime


async def add(rt: Runtime, user_id: str, room_id: str, asset_id: str, x: float, y: float, rotation: float,
              scale: float, z_index: int, sender: Connection | None = None) -> tuple[dict[str, Any], int]:
    stored = await rt.events.append(room_id, AddToken(user_id, replies.new_id(), asset_id, x, y, rotation, scale,
                                                      z_index, replies.now()))
    await rt.hub.publish(room_id, stored.version, stored.ts, sender, stored.body)
    return stored.result, stored.version


async def change(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, values: dict[str, Any],
                 if_version: int | None, sender: Connection | None = None) -> tuple[dict[str, Any], int]:
    """token.update: returns the token after the change and the room version."""
    owner = None if role == GM else user_id
    stored = await rt.events.append(room_id, UpdateToken(user_id, token_id, values, owner, if_version))
    await rt.hub.publish(room_id, stored.version, stored.ts, sender, stored.body)
    return stored.result, stored.version


async def move(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, x: float, y: float,
               if_version: int | None, sender: Connection | None = None) -> tuple[int, int]:
    """token.move: returns (room version, token version) once the move and its event are durable."""
    owner = None if role == GM else user_id
    stored = await rt.events.append(room_id, MoveToken(user_id, token_id, x, y, owner, if_version))
    await rt.hub.publish(room_id, stored.version, stored.ts, sender, stored.body)
    return stored.version, stored.result


async def remove(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, if_version: int | None,
                 sender: Connection | None = None) -> int:
    owner = None if role == GM else user_id
    stored = await rt.events.append(room_id, RemoveToken(user_id, token_id, owner, if_version))
    await rt.hub.publish(room_id, stored.version, stored.ts, sender, stored.body)
    return stored.version


# The room version and its tokens' owners in one statement (one snapshot): what the owner index
# (realtime/room_tokens.py) starts from. A closed or deleted room reads as version 0, no tokens.
_OWNERS = (
    sa.select(game_rooms.c.version, board_tokens.c.id, board_tokens.c.owner_id)
    .select_from(game_rooms.outerjoin(board_tokens, board_tokens.c.room_id == game_rooms.c.id))
    .where(game_rooms.c.id == sa.bindparam("room_id"))
    .limit(sa.bindparam("limit"))
)


async def _load_owners(rt: Runtime, room_id: str) -> tuple[int, list[tuple[str, str | None]]]:
    async with rt.db.read() as conn:
        rows = (await conn.execute(_OWNERS, {"room_id": room_id, "limit": rt.room_tokens.max_tokens + 1})).all()
    if not rows:
        return 0, []
    return int(rows[0][0]), [(str(t), str(o) if o else None) for _, t, o in rows if t is not None]


async def _owner_in_db(rt: Runtime, room_id: str, token_id: str) -> str | Lookup | None:
    """One token's owner: only for rooms too big for the index."""
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(board_tokens.c.owner_id).where(
            board_tokens.c.id == token_id, board_tokens.c.room_id == room_id))).first()
    if row is None:
        return Lookup.MISSING
    return str(row[0]) if row[0] else None


async def preview_move(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, x: float, y: float,
                       sender: Connection) -> None:
    """A preview `token.move` (a frame of a drag): relayed only if the sender could commit it, the
    same checks and codes as `move`, answered from the room's token owner index, not the database."""
    owner = await rt.room_tokens.owner(room_id, token_id, lambda: _load_owners(rt, room_id))
    if owner is Lookup.UNKNOWN:
        owner = await _owner_in_db(rt, room_id, token_id)
    if isinstance(owner, Lookup):  # MISSING (the database never answers UNKNOWN)
        raise NotFound("no such token in this room", code="token_not_found")
    if not can_change_token(role, user_id, owner or ""):
        raise Forbidden("players may only change their own tokens", code="not_token_owner")
    await preview(rt, user_id, room_id, ev.TOKEN_MOVING, {"token_id": token_id, "x": x, "y": y}, sender)


async def preview(rt: Runtime, user_id: str, room_id: str, etype: str, payload: dict[str, Any],
                  sender: Connection) -> None:
    """Ephemeral: relayed to the room through the broker, never stored, no version."""
    body = orjson.dumps({"type": etype, "room_id": room_id, "ts": replies.now_ms(), "by": user_id, **payload})
    await rt.hub.publish(room_id, 0, replies.now_ms(), sender, body)

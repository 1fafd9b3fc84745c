"""Tokens on the board: the hot path of play.

Each change is one write transaction: take the room version (locks the room row), change the
token with its permission and `if_version` checks in the WHERE clause, store the event. The
ack and the event follow the commit, so an acked change is durable before anyone sees it.

`token.move` and `token.add` on PostgreSQL do all of that in one autocommit statement
(`db/hotpath.py`): one round trip instead of five or six. When that statement changes nothing (a
closed room, someone else's token, a stale `if_version`, a lost race, an asset not in the room)
the transactional path runs instead and says why.
Moves are not coalesced: each one is durable before its ack.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db import hotpath
from tableforge.db.schema import board_tokens, game_assets, game_rooms
from tableforge.domain import events as ev
from tableforge.domain.errors import Conflict, Forbidden, NotFound
from tableforge.domain.roles import GM, can_change_token
from tableforge.realtime.connection import Connection
from tableforge.realtime.room_tokens import Lookup
from tableforge.services import events, shapes
from tableforge.services.runtime import Runtime

_TOKEN_COLUMNS = (board_tokens.c.id, board_tokens.c.asset_id, board_tokens.c.owner_id, board_tokens.c.x,
                  board_tokens.c.y, board_tokens.c.rotation, board_tokens.c.scale, board_tokens.c.z_index,
                  board_tokens.c.version)


async def add(rt: Runtime, user_id: str, room_id: str, asset_id: str, x: float, y: float, rotation: float,
              scale: float, z_index: int, sender: Connection | None = None) -> tuple[dict[str, Any], int]:
    token = {"id": shapes.new_id(), "asset_id": asset_id, "owner_id": user_id, "x": x, "y": y,
             "rotation": rotation, "scale": scale, "z_index": z_index, "version": 1}
    out = shapes.token(token)
    if rt.db.is_postgres:
        ts = shapes.now_ms()
        pieces = events.body_pieces(ev.TOKEN_ADDED, room_id, ts, user_id, {"token": out})
        version = await hotpath.add_token(rt.db, room_id, asset_id, token, shapes.now(), pieces,
                                          rt.settings.ws_history_size)
        if version is not None:
            await rt.hub.publish(room_id, version, ts, sender, str(version).join(pieces).encode())
            return out, version
    async with rt.db.write() as conn:
        version = await events.next_versions(conn, room_id)
        asset_room = (await conn.execute(sa.select(game_assets.c.room_id).where(game_assets.c.id == asset_id))).scalar()
        if asset_room is None or str(asset_room) != room_id:
            raise NotFound("no such asset in this room", code="asset_not_found")
        await conn.execute(sa.insert(board_tokens).values(room_id=room_id, created_at=shapes.now(), **token))
        event = await events.store(conn, room_id, version, ev.TOKEN_ADDED, user_id, {"token": out},
                                   rt.settings.ws_history_size)
    await rt.hub.publish(room_id, version, event.ts, sender, event.body)
    return out, version


async def _explain_miss(conn: AsyncConnection, room_id: str, token_id: str, user_id: str, role: str,
                        if_version: int | None) -> Exception:
    """Error path only: say why the guarded UPDATE matched no row."""
    row = (await conn.execute(
        sa.select(board_tokens.c.owner_id, board_tokens.c.version)
        .where(board_tokens.c.id == token_id, board_tokens.c.room_id == room_id)
    )).first()
    if row is None:
        return NotFound("no such token in this room", code="token_not_found")
    if not can_change_token(role, user_id, str(row[0]) if row[0] else ""):
        return Forbidden("players may only change their own tokens", code="not_token_owner")
    if if_version is not None and int(row[1]) != if_version:
        return Conflict(f"the token changed (version {row[1]}, you had {if_version})", code="conflict",
                        details={"version": int(row[1])})
    return Conflict("the token changed", code="conflict")


async def change(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, values: dict[str, Any],
                 if_version: int | None, sender: Connection | None = None, *,
                 move_only: bool = False) -> tuple[dict[str, Any], int]:
    """token.move / token.update: returns the token after the change and the room version."""
    guard = [board_tokens.c.id == token_id, board_tokens.c.room_id == room_id]
    if role != GM:
        guard.append(board_tokens.c.owner_id == user_id)
    if if_version is not None:
        guard.append(board_tokens.c.version == if_version)
    async with rt.db.write() as conn:
        version = await events.next_versions(conn, room_id)
        row = (await conn.execute(
            sa.update(board_tokens).where(*guard)
            .values(**values, version=board_tokens.c.version + 1)
            .returning(*_TOKEN_COLUMNS)
        )).mappings().first()
        if row is None:
            raise await _explain_miss(conn, room_id, token_id, user_id, role, if_version)
        token = shapes.token(row)
        if move_only:
            payload = {"token_id": token_id, "x": token["x"], "y": token["y"], "token_version": token["version"]}
            etype = ev.TOKEN_MOVED
        else:
            payload, etype = {"token": token}, ev.TOKEN_UPDATED
        event = await events.store(conn, room_id, version, etype, user_id, payload, rt.settings.ws_history_size)
    await rt.hub.publish(room_id, version, event.ts, sender, event.body)
    return token, version


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def move(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, x: float, y: float,
               if_version: int | None, sender: Connection | None = None) -> tuple[int, int]:
    """token.move: returns (room version, token version) once the move and its event are durable."""
    if rt.db.is_postgres:
        ts = shapes.now_ms()
        # The stored event, exactly as `events.store` would encode it, split around the two versions.
        head = f'{{"type":"{ev.TOKEN_MOVED}","room_id":{_json(room_id)},"version":'
        mid = (f',"ts":{_json(ts)},"by":{_json(user_id)},"token_id":{_json(token_id)},"x":{_json(float(x))},'
               f'"y":{_json(float(y))},"token_version":')
        done = await hotpath.move(rt.db, room_id, token_id, x, y, None if role == GM else user_id, if_version,
                                  head, mid, rt.settings.ws_history_size)
        if done is not None:
            version, token_version = done
            body = f"{head}{version}{mid}{token_version}}}".encode()
            await rt.hub.publish(room_id, version, ts, sender, body)
            return version, token_version
    token, version = await change(rt, user_id, role, room_id, token_id, {"x": x, "y": y}, if_version, sender,
                                  move_only=True)
    return version, int(token["version"])


async def remove(rt: Runtime, user_id: str, role: str, room_id: str, token_id: str, if_version: int | None,
                 sender: Connection | None = None) -> int:
    guard = [board_tokens.c.id == token_id, board_tokens.c.room_id == room_id]
    if role != GM:
        guard.append(board_tokens.c.owner_id == user_id)
    if if_version is not None:
        guard.append(board_tokens.c.version == if_version)
    async with rt.db.write() as conn:
        version = await events.next_versions(conn, room_id)
        row = (await conn.execute(sa.delete(board_tokens).where(*guard).returning(board_tokens.c.id))).first()
        if row is None:
            raise await _explain_miss(conn, room_id, token_id, user_id, role, if_version)
        event = await events.store(conn, room_id, version, ev.TOKEN_REMOVED, user_id, {"token_id": token_id},
                                   rt.settings.ws_history_size)
    await rt.hub.publish(room_id, version, event.ts, sender, event.body)
    return version


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
    body = orjson.dumps({"type": etype, "room_id": room_id, "ts": shapes.now_ms(), "by": user_id, **payload})
    await rt.hub.publish(room_id, 0, shapes.now_ms(), sender, body)

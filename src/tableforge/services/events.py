"""Stored room events: the version is taken inside the transaction that stores the change.

`UPDATE game_rooms SET version = version + 1 … RETURNING version` locks the room row, so
changes to one room serialize and versions rise by exactly one with no gaps, on any number
of instances. The event body (exactly what clients receive) is kept in a bounded per-room
history for `join {since}`, then published after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db.schema import game_rooms, room_events
from tableforge.domain.errors import Conflict, NotFound
from tableforge.services.shapes import now_ms

_PRUNE_EVERY = 100


@dataclass(slots=True)
class Event:
    room_id: str
    version: int
    ts: float
    body: bytes


async def next_versions(conn: AsyncConnection, room_id: str, count: int = 1) -> int:
    """Reserve `count` versions for the room; returns the first. Raises if the room is closed."""
    row = (
        await conn.execute(
            sa.update(game_rooms)
            .where(game_rooms.c.id == room_id, game_rooms.c.is_active.is_(True))
            .values(version=game_rooms.c.version + count)
            .returning(game_rooms.c.version)
        )
    ).first()
    if row is None:
        exists = (await conn.execute(sa.select(game_rooms.c.id).where(game_rooms.c.id == room_id))).first()
        if exists is None:
            raise NotFound("no such room", code="room_not_found")
        raise Conflict("the room is closed", code="room_closed")
    return int(row[0]) - count + 1


async def store(conn: AsyncConnection, room_id: str, version: int, etype: str, by: str | None,
                payload: dict[str, Any], history_size: int) -> Event:
    ts = now_ms()
    body = orjson.dumps({"type": etype, "room_id": room_id, "version": version, "ts": ts, "by": by, **payload})
    await conn.execute(sa.insert(room_events).values(room_id=room_id, version=version, body=body.decode()))
    if version % _PRUNE_EVERY == 0:
        await conn.execute(
            sa.delete(room_events).where(room_events.c.room_id == room_id,
                                         room_events.c.version <= version - history_size)
        )
    return Event(room_id, version, ts, body)


# For bodies assembled in SQL (`db/hotpath.py`), where the room version is only known inside the
# statement: the caller writes VERSION_MARK wherever the version goes. `"version":` followed by this
# number cannot occur inside an encoded JSON string (its quote would be escaped).
VERSION_MARK = -7_000_000_000_000_001
_MARK_KEY = b'"version":%d' % VERSION_MARK


def body_pieces(etype: str, room_id: str, ts: float, by: str | None, payload: dict[str, Any]) -> list[str]:
    """The event body split around each `"version":VERSION_MARK` (key kept): joined with the
    version, the pieces give the body (`str(version).join(pieces)`, or SQL's array_to_string)."""
    template = orjson.dumps({"type": etype, "room_id": room_id, "version": VERSION_MARK, "ts": ts, "by": by,
                             **payload})
    split = [p.decode() for p in template.split(_MARK_KEY)]
    return [p + '"version":' for p in split[:-1]] + [split[-1]]


async def history(conn: AsyncConnection, room_id: str, after: int, upto: int) -> list[tuple[int, str]]:
    rows = await conn.execute(
        sa.select(room_events.c.version, room_events.c.body)
        .where(room_events.c.room_id == room_id, room_events.c.version > after, room_events.c.version <= upto)
        .order_by(room_events.c.version)
    )
    return [(int(v), b) for v, b in rows]


# The room's version and the stored events after `since`, in one statement: consistent without a
# transaction, since one statement reads one snapshot.
_SINCE = (
    sa.select(game_rooms.c.version.label("current"), room_events.c.version, room_events.c.body)
    .select_from(game_rooms.outerjoin(room_events, sa.and_(room_events.c.room_id == game_rooms.c.id,
                                                           room_events.c.version > sa.bindparam("since"),
                                                           room_events.c.version <= game_rooms.c.version)))
    .where(game_rooms.c.id == sa.bindparam("room_id"))
    .order_by(room_events.c.version)
)


async def since(conn: AsyncConnection, room_id: str, after: int) -> tuple[int, list[tuple[int, str]]]:
    """(current version, the stored events newer than `after` in version order) of the room."""
    rows = (await conn.execute(_SINCE, {"room_id": room_id, "since": after})).all()
    current = int(rows[0][0]) if rows else 0
    return current, [(int(v), b) for _, v, b in rows if v is not None]


_VERSIONS = sa.select(game_rooms.c.id, game_rooms.c.version).where(
    game_rooms.c.id.in_(sa.bindparam("ids", expanding=True)))


async def current_versions(conn: AsyncConnection, room_ids: list[str]) -> dict[str, int]:
    """Several rooms' versions in one statement (the hub's catch-up after a broker outage)."""
    if not room_ids:
        return {}
    return {str(i): int(v) for i, v in await conn.execute(_VERSIONS, {"ids": room_ids})}

"""The steps every transactional change shares: reserve versions, store an event with its audience,
and what the board looks like to players (used by db/board_log.py and db/scene_log.py)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple, NoReturn, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db.changes import EVERYONE, StoredEvent
from tableforge.db.event_body import encode_body
from tableforge.db.schema import board_tokens, game_rooms, room_events, scenes
from tableforge.db.undo_entry import Entry
from tableforge.domain import fog as fogs
from tableforge.domain import wire
from tableforge.domain.audience import Routing
from tableforge.domain.errors import Conflict, NotFound
from tableforge.observability import metrics

R = TypeVar("R")
PRUNE_EVERY = 100  # the history beyond `history_size` is pruned at every 100th version of a room
Variant = tuple[str, str, dict[str, Any]]  # (selector, event type, payload)


class Reserved(NamedTuple):
    version: int  # the first of the reserved versions
    players_scene_id: str


class ReservedMove(NamedTuple):
    version: int
    players_scene_id: str
    fog_free: bool  # no scene of the room has fog: a move needs no fog geometry, and fogs nothing
    # The token's position and version as this statement read them (None: not in the room): the
    # undo entry's prior position; the move's UPDATE only applies if the version is still this one.
    token: tuple[float, float, int] | None


# Built once: a statement built per call costs SQLAlchemy a construction and a cache-key walk.
RESERVE = (sa.update(game_rooms)
           .where(game_rooms.c.id == sa.bindparam("room"), game_rooms.c.is_active.is_(True))
           .values(version=game_rooms.c.version + sa.bindparam("count"))
           .returning(game_rooms.c.version, game_rooms.c.players_scene_id, game_rooms.c.fog_free))


def _token_now(column: sa.Column[Any]) -> sa.ScalarSelect[Any]:
    return (sa.select(column).where(board_tokens.c.id == sa.bindparam("token"),
                                    board_tokens.c.room_id == sa.bindparam("room")).scalar_subquery())


# A move's reservation also reads the token's position and version (scalar subqueries in RETURNING):
# the undo entry's prior position, without a read of its own.
_RESERVE_MOVE = RESERVE.returning(_token_now(board_tokens.c.x), _token_now(board_tokens.c.y),
                                  _token_now(board_tokens.c.version))
_INSERT_EVENT = sa.insert(room_events)
_PRUNE = sa.delete(room_events).where(room_events.c.room_id == sa.bindparam("room"),
                                      room_events.c.version <= sa.bindparam("upto"))


async def refuse(conn: AsyncConnection, room_id: str) -> NoReturn:
    exists = (await conn.execute(sa.select(game_rooms.c.id).where(game_rooms.c.id == room_id))).first()
    if exists is None:
        raise NotFound("no such room", code="room_not_found")
    raise Conflict("the room is closed", code="room_closed")


async def next_versions(conn: AsyncConnection, room_id: str, count: int = 1) -> Reserved:
    """Reserve `count` versions for the room (this locks its row: changes to one room serialize).
    Raises if the room is closed or missing."""
    row = (await conn.execute(RESERVE, {"room": room_id, "count": count})).first()
    if row is None:
        await refuse(conn, room_id)
    return Reserved(int(row[0]) - count + 1, str(row[1]) if row[1] else "")


async def reserve_one(conn: AsyncConnection, room_id: str) -> tuple[int, str, bool]:
    """`next_versions` for one change, with whether the room is fog-free (no scene has fog)."""
    row = (await conn.execute(RESERVE, {"room": room_id, "count": 1})).first()
    if row is None:
        await refuse(conn, room_id)
    return int(row[0]), str(row[1]) if row[1] else "", bool(row[2])


async def reserve_move(conn: AsyncConnection, room_id: str, token_id: str) -> ReservedMove:
    """`next_versions` for one move, which also needs to know whether the room has fog, and the
    token's position before it (for its undo entry)."""
    row = (await conn.execute(_RESERVE_MOVE, {"room": room_id, "count": 1, "token": token_id})).first()
    if row is None:
        await refuse(conn, room_id)
    token = None if row[5] is None else (float(row[3]), float(row[4]), int(row[5]))
    return ReservedMove(int(row[0]), str(row[1]) if row[1] else "", bool(row[2]), token)


async def store(conn: AsyncConnection, history_size: int, room_id: str, version: int, etype: str, by: str | None,
                payload: dict[str, Any], result: R, audience: str | None = None,
                variants: tuple[Variant, ...] = (), undo: Entry | None = None) -> StoredEvent[R]:
    """Store one event: its main body for `audience` (None: everyone) and other bodies for others.
    `undo`: what undoing it needs, for its author `by` (db/undo_log.py); never sent to clients."""
    ts = wire.now_ms()
    body = encode_body(etype, room_id, version, ts, by, payload)
    routing = EVERYONE if audience is None and not variants else Routing(
        audience, tuple((sel, encode_body(vtype, room_id, version, ts, by, vpayload))
                        for sel, vtype, vpayload in variants))
    await conn.execute(_INSERT_EVENT, {"room_id": room_id, "version": version, "body": body.decode(),
                                       "audience": routing.audience, "variants": routing.encoded_variants(),
                                       "undo_by": by if undo is not None else None,
                                       "undo": undo.encode() if undo is not None else None})
    if version % PRUNE_EVERY == 0:
        await conn.execute(_PRUNE, {"room": room_id, "upto": version - history_size})
    return StoredEvent(room_id, version, ts, body, result, routing)


class SceneFog(NamedTuple):
    fog: fogs.Fog
    version: int


class FogCache:
    """Parsed fogs by scene, checked against the stored `fog_version` (one small read per use;
    the document itself is read and parsed only when it changed). Bounded, least recently used out."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._fogs: OrderedDict[str, SceneFog] = OrderedDict()

    async def fog(self, conn: AsyncConnection, scene_id: str) -> fogs.Fog:
        version = (await conn.execute(sa.select(scenes.c.fog_version).where(scenes.c.id == scene_id))).scalar()
        if version is None:
            return fogs.Fog()
        cached = self._fogs.get(scene_id)
        if cached is not None and cached.version == int(version):
            self._fogs.move_to_end(scene_id)
            return cached.fog
        raw = (await conn.execute(sa.select(scenes.c.fog, scenes.c.fog_version)
                                  .where(scenes.c.id == scene_id))).first()
        if raw is None:
            return fogs.Fog()
        parsed = fogs.parse_fog(raw[0])
        self.put(scene_id, parsed, int(raw[1]))
        return parsed

    async def fog_at(self, conn: AsyncConnection, scene_id: str, version: int) -> fogs.Fog:
        """The scene's fog, whose `fog_version` the caller has just read (in this transaction): the
        kept copy if it is that version, else the document read and kept."""
        cached = self._fogs.get(scene_id)
        if cached is not None and cached.version == version:
            self._fogs.move_to_end(scene_id)
            return cached.fog
        return await self.fog(conn, scene_id)

    def cached(self, scene_id: str) -> SceneFog | None:
        """The fog kept for the scene, unchecked (PostgreSQL's fogged move checks its version in the
        statement itself)."""
        found = self._fogs.get(scene_id)
        if found is not None:
            self._fogs.move_to_end(scene_id)
        return found

    def put(self, scene_id: str, fog: fogs.Fog, version: int) -> SceneFog:
        kept = self._fogs[scene_id] = SceneFog(fog, version)
        self._fogs.move_to_end(scene_id)
        while len(self._fogs) > self.size:
            self._fogs.popitem(last=False)
        metrics.FOG_CACHE.set(len(self._fogs))
        return kept


def token_routing(scene_id: str, seen_before: bool | None, seen_after: bool) -> tuple[str, str | None]:
    """(the main body's audience, what players get instead when their view of the token flips:
    "added", "removed" or None). `seen_before` None: the token is new."""
    gms = f"g@{scene_id}"
    if seen_after and (seen_before is None or seen_before):
        return f"{gms};p", None
    if seen_after:
        return gms, "added"
    if seen_before:
        return gms, "removed"
    return gms, None

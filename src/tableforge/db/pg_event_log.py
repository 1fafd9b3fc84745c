"""The room event log on PostgreSQL: the hot changes in one statement each.

The transactional path (BEGIN; take the room version; change the row with its guards; store the
event; COMMIT) costs five round trips and a pool connection held across all of them. Here the same
work is one data-modifying CTE sent in autocommit mode on the raw asyncpg connection (a prepared
statement, cached per connection): one round trip, and one statement is atomic. Done this way:
`MoveToken` in a room without fog (`game_rooms.fog_free`), the concurrent ones of this instance
several to a statement (group commit, db/pg_move_batch.py); `MoveToken` in a room with fog when the
token stays as fogged as it was (`_fogged_move_sql`: the fog's geometry is applied in Python from a
cached copy whose version the statement checks under the locks); `AddToken` (db/pg_token_add.py: what
it assumes of the room is kept per room and checked under the locks, the same way); `PostMessage`
(chat, dice, secret rolls; not whispers), `SetPresence` (when the caller has the profile). The other
changes are rare, or change who sees a token (db/board_log.py), and take the transactional path.

Hidden information: a move's audience depends on whether players see the token, which on a fog-free
room depends only on the token's row (`hidden`, `asset_hidden`, `fogged`, its scene) and the room's
(`players_scene_id`). Every change that alters those locks the room row first, as this statement
does, and PostgreSQL re-checks both rows under their locks, so the audience computed here is that of
the state the move is applied to.

Guarantees kept:
- The room row is updated first (`UPDATE game_rooms … RETURNING version`), so the room row lock is
  taken before the token row lock, in the same order as the transactional path (no deadlocks), and
  versions rise by exactly one per stored event, on any number of instances.
- The guards (room active, token in room, owner unless GM, `if_version`) sit in the WHERE clauses.
  The room is only bumped if the token matched in the statement's snapshot; if a concurrent change
  made the token fail its guards after that (re-checked under the row lock), the event row gets a
  NULL body, the NOT NULL constraint aborts the whole statement, and nothing is changed: no gap.
- The event body carries the version, so it is assembled in SQL from the pieces of the one body
  encoder's template (`event_log.body_template`); the same template, filled here, gives the bytes
  that are published.

A statement that changed nothing falls back to `TransactionalEventLog.append`, which applies the
change if it has become valid or raises the precise error (off the hot path). This is the only
module that imports asyncpg: the wiring imports it only for a PostgreSQL URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db import board_log
from tableforge.db.engine import Database, unavailable
from tableforge.db.event_body import encode_body, variants_template
from tableforge.db.event_log import (
    PRUNE_EVERY,
    ROOM_VERSION,
    TOKEN_VERSION,
    AddToken,
    Change,
    Membership,
    MoveToken,
    PostMessage,
    SetPresence,
    StoredEvent,
    TransactionalEventLog,
    body_template,
)
from tableforge.db.pg_move_batch import BATCH_SQL, Move, MoveQueue, batch_args
from tableforge.db.pg_token_add import ADD_SQL, CONTEXT_SQL, SCENE_FOG_SQL, AddContext, AddContexts, jsonb
from tableforge.domain import events as ev
from tableforge.domain import token_fields, wire
from tableforge.domain.audience import Logged, Routing
from tableforge.domain.errors import Unavailable
from tableforge.domain.fog import parse_fog
from tableforge.observability import metrics

R = TypeVar("R")


def _move_sql(owner_guard: bool, version_guard: bool, fogged: bool = False) -> str:
    """The one-statement move. `fogged`: the variant for a room with fog (`_FOGGED_MOVE_SQL`)."""
    guard = "t.id = $2 AND t.room_id = $1"
    n = 8  # $8: the mover, who may undo it
    if owner_guard:
        n += 1
        guard += f" AND t.owner_id = ${n}"
    if version_guard:
        n += 1
        guard += f" AND t.version = ${n}"
    seen = "t.scene_id = {ps} AND NOT t.hidden AND NOT t.fogged AND NOT t.asset_hidden"
    # A player may only move a token players see (else it is token_not_found, from the fallback).
    # The room's UPDATE joins the token (the guard) and returns its position as the statement's
    # snapshot saw it: the undo entry's prior position, at no extra read. `tok` only moves the token
    # if its version is still that one: a concurrent change that got to the row first (re-checked
    # under its lock) leaves `tok` empty and the statement aborts as below, so the entry is never stale
    # (such a race, two changes of one token in the same instant, is applied by the transaction).
    room_guard = guard + (" AND " + seen.format(ps="game_rooms.players_scene_id") if owner_guard else "")
    tok_guard = guard + (" AND " + seen.format(ps="room.players_scene_id") if owner_guard else "")
    room_fog, sc, tok_from = " AND game_rooms.fog_free", "", "room"
    if fogged:
        # Python computed `fogged` (${n + 3}) for the new position from the fog of the token's scene
        # (${n + 1}) at `fog_version` ${n + 2} (db/log_store.FogCache); the statement checks both under
        # the locks: the scene's row is locked FOR SHARE after the room's (every fog change locks the
        # room first, then updates the scene), and a row lock reads the newest version of the row, so
        # a fog changed since the statement's snapshot makes `sc` empty, the event's body NULL and the
        # statement abort. The token's `scene_id` and `fogged` are re-checked under its lock like the
        # other guards: the token stays as fogged as it was, so nobody's view of it flips.
        same = f" AND t.scene_id = ${n + 1} AND t.fogged = ${n + 3}"
        room_fog, tok_from = same, "room, sc"
        tok_guard += same
        sc = f"""
), sc AS MATERIALIZED (
    SELECT 1 FROM scenes s, room WHERE s.id = ${n + 1} AND s.fog_version = ${n + 2} FOR SHARE OF s"""
    return f"""
WITH room AS (
    UPDATE game_rooms SET version = game_rooms.version + 1
    FROM board_tokens t
    WHERE game_rooms.id = $1 AND game_rooms.is_active{room_fog} AND {room_guard}
    RETURNING game_rooms.version, game_rooms.players_scene_id, t.x AS ox, t.y AS oy, t.version AS ov{sc}
), tok AS (
    UPDATE board_tokens t SET x = $3, y = $4, version = t.version + 1
    FROM {tok_from}
    WHERE {tok_guard} AND t.version = room.ov
    RETURNING room.version AS rv, t.version AS tv, t.scene_id AS sid,
              ({seen.format(ps="room.players_scene_id")}) AS seen, t.id AS tid, room.ox, room.oy
), ev AS (
    INSERT INTO room_events (room_id, version, body, audience, undo_by, undo)
    SELECT $1, room.version, $5::text || room.version || $6::text || tok.tv || $7::text,
           'g@' || tok.sid::text || CASE WHEN tok.seen THEN ';p' ELSE '' END,
           $8, json_build_object('type', 'token.moved', 'token_id', tok.tid::text, 'v', tok.tv, 'b', tok.tv - 1,
                                 'prior', json_build_object('x', tok.ox, 'y', tok.oy))::text
    FROM room LEFT JOIN tok ON true
)
SELECT rv, tv, sid, seen FROM tok"""


_MOVE_SQL = {(o, v): _move_sql(o, v) for o in (False, True) for v in (False, True)}
# The move on a room with fog, when the token stays as fogged as it was (see `_move_sql`).
_FOGGED_MOVE_SQL = {(o, v): _move_sql(o, v, fogged=True) for o in (False, True) for v in (False, True)}
# What a move on a room with fog needs to know first (when not already cached): the token's scene,
# and that scene's fog with its version.
_TOKEN_FOG_SQL = """SELECT t.scene_id::text, s.fog::text, s.fog_version FROM board_tokens t
JOIN scenes s ON s.id = t.scene_id WHERE t.id = $1 AND t.room_id = $2"""

# chat.message / dice.rolled: the message row and its event. The body is `pieces` joined with the
# room version (it may appear more than once: the event's and the message's). `$9`: who it reached
# (room / gm / self), `$10` its audience (NULL: the room). Whispers take the transactional path,
# which checks that their recipients are members.
_LOG_SQL = """
WITH room AS (
    UPDATE game_rooms SET version = version + 1 WHERE id = $1 AND is_active RETURNING version
), msg AS (
    INSERT INTO room_messages (id, room_id, user_id, kind, text, roll, version, created_at, visibility, audience)
    SELECT $2, $1, $3, $4, $5, $6::jsonb, room.version, $7, $9, $10 FROM room
    RETURNING version
), ev AS (
    INSERT INTO room_events (room_id, version, body, audience)
    SELECT $1, msg.version, array_to_string($8::text[], msg.version::text), $10 FROM msg
)
SELECT version FROM msg"""

# player.joined / player.left: is_online kept in step with the stored event. The same guard-then-lock
# pattern as the move: a player removed meanwhile leaves `pl` empty, the NULL body aborts it all.
_PRESENCE_SQL = """
WITH room AS (
    UPDATE game_rooms SET version = version + 1
    WHERE id = $1 AND is_active AND EXISTS (SELECT 1 FROM room_players WHERE room_id = $1 AND user_id = $2)
    RETURNING version
), pl AS (
    UPDATE room_players p SET is_online = $3
    FROM room
    WHERE p.room_id = $1 AND p.user_id = $2
    RETURNING room.version AS rv
), ev AS (
    INSERT INTO room_events (room_id, version, body)
    SELECT $1, room.version, array_to_string($4::text[], pl.rv::text)
    FROM room LEFT JOIN pl ON true
)
SELECT rv FROM pl"""

_PRUNE_SQL = "DELETE FROM room_events WHERE room_id = $1 AND version <= $2"

# The reads `join` makes every time (and the hub when a room gets its first socket here), as
# event_log.py's SQLAlchemy statements say them, prepared once per lane: no pool checkout and no
# statement compilation per call.
_MEMBERSHIP_SQL = """SELECT p.role, r.is_active, r.players_scene_id::text FROM game_rooms r
LEFT JOIN room_players p ON p.room_id = r.id AND p.user_id = $2 WHERE r.id = $1"""
_SINCE_SQL = """SELECT r.version, e.version, e.body, e.audience, e.variants FROM game_rooms r
LEFT JOIN room_events e ON e.room_id = r.id AND e.version > $2 AND e.version <= r.version
WHERE r.id = $1 ORDER BY e.version"""
_VERSIONS_SQL = "SELECT id::text, version FROM game_rooms WHERE id = ANY($1::uuid[])"

# Errors that mean the connection itself is unusable: it is invalidated, never reused. Around a
# PostgreSQL restart asyncpg also reports a killed session as an InternalClientError ("cannot switch
# to state …"), and opening a lane fails with SQLAlchemy's DBAPIError ("the database system is
# shutting down"): both are the database being unavailable, not a bug of ours.
_BROKEN = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)


class Lanes:
    """A few connections taken from the engine's pool and kept for the one-statement writes.

    Checking a connection out of the pool per statement costs more than the statement: SQLAlchemy's
    checkout and reset, plus the pool's pre-ping (BEGIN; ping; ROLLBACK on asyncpg). A lane is
    checked out once and reused, so a move is one round trip. At most `size` lanes (a part of the
    pool, never more connections than TABLEFORGE_DB_POOL_MAX); a lane idle for more than a second
    is pinged before use, so after a PostgreSQL restart a stale lane is replaced, not failed on.
    A lane idle for `LINGER_S` goes back to the pool (a quiet instance falls back to the pool's
    MIN connections), and all of them when the database is disposed (shutdown).
    """

    IDLE_PING_S = 1.0
    LINGER_S = 3.0

    def __init__(self, db: Database, size: int) -> None:
        self.db = db
        self.size = size
        self.count = 0
        # Raised when a lane turns out broken: every lane released before that is pinged before its
        # next use, since whatever broke one (a PostgreSQL restart) broke them all.
        self.epoch = 0
        self._idle: asyncio.LifoQueue[tuple[AsyncConnection, float, int] | None] = asyncio.LifoQueue()
        self._reaper: asyncio.Task[None] | None = None
        # Each lane's asyncpg connection, taken once: asking SQLAlchemy for it per statement costs a
        # greenlet switch and its adaption layers every time.
        self._raw: dict[int, asyncpg.Connection] = {}

    def raw(self, conn: AsyncConnection) -> asyncpg.Connection:
        """The asyncpg connection under a lane that `acquire` returned."""
        return self._raw[id(conn)]

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now, keep, stale = time.monotonic(), [], []
            while not self._idle.empty():  # no await in between: nobody else sees the queue meanwhile
                item = self._idle.get_nowait()
                if item is not None and now - item[1] > self.LINGER_S:
                    stale.append(item[0])
                elif item is not None:
                    keep.append(item)
            for item in reversed(keep):
                self._idle.put_nowait(item)
            for conn in stale:
                self.count -= 1
                self._raw.pop(id(conn), None)
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _open(self) -> AsyncConnection:
        self.count += 1
        try:
            conn = self.db.engine.connect()
            await conn.start()
            try:
                self._raw[id(conn)] = (await conn.get_raw_connection()).driver_connection
            except BaseException:
                await conn.close()
                raise
        except BaseException:
            self.count -= 1
            raise
        return conn

    async def acquire(self) -> AsyncConnection:
        """A lane; the wait for it counts as a pool wait (tableforge_db_pool_wait_seconds, timeouts)."""
        state = self.db.pools["main"]
        started = state.begin_wait()
        try:
            conn = await self._acquire()
        except BaseException as exc:
            state.end_wait(started, timed_out=isinstance(exc, PoolTimeout))
            raise
        state.end_wait(started)
        return conn

    async def _acquire(self) -> AsyncConnection:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap(), name="pg-event-log-lanes-reaper")
        while True:
            if self._idle.empty() and self.count < self.size:
                return await self._open()
            if not self._idle.empty():  # the usual case: no timeout to arm, no coroutine to await
                item = self._idle.get_nowait()
            else:
                try:
                    async with asyncio.timeout(self.db.settings.db_connection_timeout):
                        item = await self._idle.get()
                except TimeoutError:
                    raise PoolTimeout("no hot-path lane became free in time") from None
            if item is None:  # a lane was discarded: its slot is free again
                if self.count < self.size:
                    return await self._open()
                continue
            conn, since, epoch = item
            if epoch < self.epoch or time.monotonic() - since > self.IDLE_PING_S:
                try:
                    await self.raw(conn).execute("SELECT 1")
                except Exception:
                    await self.discard(conn)
                    continue
            return conn

    def release(self, conn: AsyncConnection) -> None:
        self._idle.put_nowait((conn, time.monotonic(), self.epoch))

    async def discard(self, conn: AsyncConnection) -> None:
        self.count -= 1
        self.epoch += 1
        self._raw.pop(id(conn), None)
        with contextlib.suppress(Exception):
            await conn.invalidate()
            await conn.close()
        self._idle.put_nowait(None)

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        while not self._idle.empty():
            item = self._idle.get_nowait()
            if item is not None:
                self.count -= 1
                self._raw.pop(id(item[0]), None)
                with contextlib.suppress(Exception):
                    await item[0].close()


class PgEventLog(TransactionalEventLog):
    """The hot changes in one statement on a lane; everything else, and every refusal, transactional."""

    FOGGED_HINT_S = 5.0  # how long a room whose move needed the transaction goes straight to it
    FOGGED_HINT_MAX = 10_000
    TOKEN_SCENES_MAX = 20_000
    READ_SQL_MAX = 32

    def __init__(self, db: Database, history_size: int) -> None:
        super().__init__(db, history_size)
        self._lanes = Lanes(db, max(1, min(6, db.settings.db_pool_max // 3)))
        db.on_dispose(self._lanes.close)  # the lanes go back to the pool before the engine is disposed
        # Rooms with fog: their moves need the fog's geometry (the transaction). Remembered briefly so
        # that each move does not first try the one statement in vain; a hint, never a correctness matter.
        self._fogged: OrderedDict[str, float] = OrderedDict()
        self._moves = MoveQueue(self._write_moves)  # group commit (db/pg_move_batch.py)
        # read_rows' statements as SQL, by id (the statement is kept in the entry: its id is not reused)
        self._read_sql: OrderedDict[int, tuple[sa.Select[Any], str, tuple[str, ...], dict[str, Any]]] = OrderedDict()
        # Tokens' scenes, for the moves on rooms with fog (a stale entry only makes the statement refuse).
        self._token_scenes: OrderedDict[str, str] = OrderedDict()
        self._add_contexts = AddContexts()  # what a token.add assumes of its room (db/pg_token_add.py)

    async def append(self, room_id: str, change: Change[R]) -> StoredEvent[R]:
        if isinstance(change, MoveToken):
            return cast(StoredEvent[R], await self._append_move(room_id, change))
        one = _ONE_STATEMENT.get(type(change))
        if one is not None:
            stored = await one(self, room_id, change)
            if stored is not None:
                return cast(StoredEvent[R], stored)
        return await super().append(room_id, change)

    async def _append_move(self, room_id: str, c: MoveToken) -> StoredEvent[int]:
        """The fog-free statement (batched); on a room with fog, the fogged statement; else (a move
        that changes who sees the token, or a refusal to explain) the transaction."""
        hinted = self._fogged_hint(room_id)
        if not hinted:
            stored = await self._one_move(room_id, c)
            if stored is not None:
                return stored
        stored = await self._fogged_move(room_id, c)
        if stored is None:
            stored = await super().append(room_id, c)
        if not hinted:  # the fog-free statement refused a valid move: the room has fog
            self._fogged[room_id] = time.monotonic()
            while len(self._fogged) > self.FOGGED_HINT_MAX:
                self._fogged.popitem(last=False)
            metrics.FOGGED_ROOM_HINTS.set(len(self._fogged))
        return stored

    def _fogged_hint(self, room_id: str) -> bool:
        since = self._fogged.get(room_id)
        if since is None:
            return False
        if time.monotonic() - since > self.FOGGED_HINT_S:
            del self._fogged[room_id]  # look again: the fog may be gone
            metrics.FOGGED_ROOM_HINTS.set(len(self._fogged))
            return False
        return True

    # -- the reads on a lane (their SQLAlchemy forms: TransactionalEventLog)
    async def membership(self, room_id: str, user_id: str) -> Membership | None:
        async def read(raw: asyncpg.Connection) -> Any:
            return await raw.fetchrow(_MEMBERSHIP_SQL, room_id, user_id)

        row = await self._on_lane(read, write=False)
        return None if row is None else (row[0], bool(row[1]), str(row[2]))

    async def read_rows(self, query: sa.Select[Any], params: dict[str, Any]) -> Sequence[Mapping[str, Any]]:
        sql, names, fixed = self._compiled(query)
        args = [params[name] if name in params else fixed[name] for name in names]

        async def read(raw: asyncpg.Connection) -> Any:
            return await raw.fetch(sql, *args)

        return cast(Sequence[Mapping[str, Any]], await self._on_lane(read, write=False) or ())

    def _compiled(self, query: sa.Select[Any]) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        """`query` as asyncpg's SQL: the SQL ($1, $2, …), the parameters' names in that order, and the
        values of those the statement fixes itself (a literal compared with, a LIMIT). Compiled once
        per statement object; bounded, since the callers pass module constants (more than a few would
        mean a caller building its statement per call, which only re-compiles)."""
        found = self._read_sql.get(id(query))
        if found is None or found[0] is not query:
            compiled = query.compile(dialect=self.db.engine.dialect)
            found = (query, str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))
            if len(self._read_sql) >= self.READ_SQL_MAX:
                self._read_sql.popitem(last=False)
            self._read_sql[id(query)] = found
        return found[1], found[2], found[3]

    async def since(self, room_id: str, after: int) -> tuple[int, list[Logged]]:
        async def read(raw: asyncpg.Connection) -> Any:
            return await raw.fetch(_SINCE_SQL, room_id, after)

        rows = await self._on_lane(read, write=False) or []
        current = int(rows[0][0]) if rows else 0
        return current, [Logged(int(v), b, a, x) for _, v, b, a, x in rows if v is not None]

    async def versions(self, room_ids: list[str]) -> dict[str, int]:
        if not room_ids:
            return {}

        async def read(raw: asyncpg.Connection) -> Any:
            return await raw.fetch(_VERSIONS_SQL, room_ids)

        return {str(i): int(v) for i, v in await self._on_lane(read, write=False) or []}

    async def _on_lane(self, work: Callable[[asyncpg.Connection], Awaitable[R]], *, write: bool = True) -> R | None:
        """Run `work` on a lane's raw connection (autocommit); map failures like `Database.write` does
        (`write`: its duration counts as a write transaction's, as `Database.write`'s does; a read's,
        like `Database.read`'s, is not).

        A statement that aborted on a constraint (the race described above) gives None."""
        start = time.perf_counter()
        lanes = self._lanes
        try:
            conn = await lanes.acquire()
            try:
                result = await work(lanes.raw(conn))
            except asyncpg.IntegrityConstraintViolationError:
                lanes.release(conn)
                return None
            except asyncpg.QueryCanceledError as exc:
                lanes.release(conn)
                raise Unavailable("the database query took too long and was cancelled", code="db_timeout") from exc
            except BaseException:
                # Broken, cancelled mid-statement, or anything unexpected: never reuse it.
                await lanes.discard(conn)
                raise
            lanes.release(conn)
        except Unavailable:
            raise
        except (PoolTimeout, DBAPIError) as exc:
            raise unavailable(exc) from exc
        except (*_BROKEN, asyncpg.PostgresError) as exc:
            raise Unavailable("the database is unavailable", code="db_unavailable") from exc
        finally:
            if write:
                metrics.DB_TRANSACTION_SECONDS.observe(time.perf_counter() - start)
        return result

    async def _prune(self, raw: asyncpg.Connection, room_id: str, version: int) -> None:
        """The history beyond `history_size`, dropped at every PRUNE_EVERY-th version of a room (after
        the commit: a failed prune loses no move, the next one catches up)."""
        if self.history_size and version % PRUNE_EVERY == 0:
            await raw.execute(_PRUNE_SQL, room_id, version - self.history_size)

    async def _fetchrow(self, sql: str, args: tuple[Any, ...], room_id: str) -> Any:
        """One statement whose row's column 0 is the room version; None if it aborted on a constraint."""
        async def work(raw: asyncpg.Connection) -> Any:
            row = await raw.fetchrow(sql, *args)
            if row is not None:
                await self._prune(raw, room_id, int(row[0]))
            return row

        return await self._on_lane(work)

    async def _write_moves(self, moves: list[Move]) -> dict[int, tuple[int, int, str, bool]]:
        """One batch of the move queue: one statement (one move: the one-move statement). If the
        batch statement aborted on the race, each move is tried alone."""
        if len(moves) > 1:
            async def work(raw: asyncpg.Connection) -> dict[int, tuple[int, int, str, bool]]:
                rows = await raw.fetch(BATCH_SQL, *batch_args(moves))
                out = {int(r[0]) - 1: (int(r[1]), int(r[2]), str(r[3]), bool(r[4])) for r in rows}
                for i, (version, *_) in out.items():
                    await self._prune(raw, moves[i].room_id, version)
                return out

            done = await self._on_lane(work)
            if done is not None:
                return done
        out = {}
        for i, m in enumerate(moves):
            args: tuple[Any, ...] = (m.room_id, m.token_id, m.x, m.y, *m.pieces, m.undo_by)
            if m.owner is not None:
                args += (m.owner,)
            if m.if_version is not None:
                args += (m.if_version,)
            row = await self._fetchrow(_MOVE_SQL[m.owner is not None, m.if_version is not None], args, m.room_id)
            if row is not None:
                out[i] = (int(row[0]), int(row[1]), str(row[2]), bool(row[3]))
        return out

    async def _one_move(self, room_id: str, c: MoveToken) -> StoredEvent[int] | None:
        ts = wire.now_ms()
        template = body_template(ev.TOKEN_MOVED, room_id, ts, c.by, {
            "token_id": c.token_id, "x": float(c.x), "y": float(c.y), "token_version": TOKEN_VERSION})
        # head, mid, tail; then who may undo it (NULL: an undo's inverse, not undoable)
        move = Move(room_id, c.token_id, c.x, c.y, template.pieces, c.owner, c.if_version,
                    c.by if c.undoable else None)
        if self._moves.full():  # a bounded queue: past it, the move is written alone
            row = (await self._write_moves([move])).get(0)
        else:
            row = await self._moves.submit(move)
        if row is None:
            return None
        version, token_version, scene_id, seen = row
        audience = f"g@{scene_id};p" if seen else f"g@{scene_id}"
        return StoredEvent(room_id, version, ts, template.fill(version, token_version), token_version,
                           Routing(audience))

    async def _fogged_move(self, room_id: str, c: MoveToken) -> StoredEvent[int] | None:
        """A move on a room with fog, in one statement when the token stays as fogged as it was.
        The token's scene and its fog come from bounded caches (read once when missing); the
        statement checks both under the locks, and anything stale or refused gives None."""
        scene_id = self._token_scenes.get(c.token_id)
        cached = self.fogs.cached(scene_id) if scene_id is not None else None
        if scene_id is None or cached is None:
            async def read(raw: asyncpg.Connection) -> Any:
                return await raw.fetchrow(_TOKEN_FOG_SQL, c.token_id, room_id)

            found = await self._on_lane(read)
            if found is None:
                return None
            scene_id, fog_version = str(found[0]), int(found[2])
            cached = self.fogs.put(scene_id, parse_fog(orjson.loads(found[1]) if found[1] else None), fog_version)
            self._remember_scene(c.token_id, scene_id)
        ts = wire.now_ms()
        template = body_template(ev.TOKEN_MOVED, room_id, ts, c.by, {
            "token_id": c.token_id, "x": float(c.x), "y": float(c.y), "token_version": TOKEN_VERSION})
        args: tuple[Any, ...] = (room_id, c.token_id, c.x, c.y, *template.pieces, c.by if c.undoable else None)
        if c.owner is not None:
            args += (c.owner,)
        if c.if_version is not None:
            args += (c.if_version,)
        args += (scene_id, cached.version, cached.fog.fogged(c.x, c.y))
        row = await self._fetchrow(_FOGGED_MOVE_SQL[c.owner is not None, c.if_version is not None], args, room_id)
        if row is None:
            self._token_scenes.pop(c.token_id, None)  # perhaps moved to another scene: read it again
            return None
        version, token_version = int(row[0]), int(row[1])
        audience = f"g@{row[2]};p" if row[3] else f"g@{row[2]}"
        return StoredEvent(room_id, version, ts, template.fill(version, token_version), token_version,
                           Routing(audience))

    def _remember_scene(self, token_id: str, scene_id: str) -> None:
        self._token_scenes[token_id] = scene_id
        self._token_scenes.move_to_end(token_id)
        while len(self._token_scenes) > self.TOKEN_SCENES_MAX:
            self._token_scenes.popitem(last=False)

    async def _add_context(self, room_id: str, scene_id: str | None) -> AddContext | None:
        """The room's add context, read (one round trip) when not kept; on a room with fog, the fog
        of the scene the add names (else the players') goes to the fog cache. None: no such room."""
        context = self._add_contexts.get(room_id)
        if context is not None:
            return context

        async def read(raw: asyncpg.Connection) -> Any:
            return await raw.fetchrow(CONTEXT_SQL, room_id, scene_id)

        row = await self._on_lane(read)
        if row is None or row[0] is None:
            return None
        if row[6] is not None:
            self.fogs.put(str(row[5]), parse_fog(orjson.loads(row[6])), int(row[7]))
        template = orjson.loads(row[4]) if row[4] is not None else None
        context = AddContext(str(row[0]), bool(row[1]), row[2], row[3], token_fields.defaults(template))
        self._add_contexts.put(room_id, context)
        return context

    async def _one_add_token(self, room_id: str, c: AddToken) -> StoredEvent[dict[str, Any]] | None:
        """token.add in one statement (db/pg_token_add.py); None: the transaction applies or refuses it."""
        context = await self._add_context(room_id, c.scene_id)
        if context is None:
            return None
        scene_id = c.scene_id or context.players_scene_id
        if not c.is_gm and scene_id != context.players_scene_id:
            return None  # scene_not_found, from the transaction
        fogged, fog_version = False, None
        if not context.fog_free:
            cached = self.fogs.cached(scene_id)
            if cached is None:
                async def read(raw: asyncpg.Connection) -> Any:
                    return await raw.fetchrow(SCENE_FOG_SQL, scene_id, room_id)

                found = await self._on_lane(read)
                if found is None:
                    return None
                cached = self.fogs.put(scene_id, parse_fog(orjson.loads(found[0]) if found[0] else None),
                                       int(found[1]))
            fogged, fog_version = cached.fog.fogged(c.x, c.y), cached.version
        with_template = board_log.needs_template(c)
        columns = board_log.character(c, context.defaults if with_template else board_log.NO_DEFAULTS)
        token = c.token(scene_id, columns)
        ts = wire.now_ms()
        body = body_template(ev.TOKEN_ADDED, room_id, ts, c.by, {"token": token})
        seen_audience, seen_variants = board_log.added_routing(token, True)
        unseen_audience, _ = board_log.added_routing(token, False)  # only the GMs: no copies
        copies = variants_template(room_id, ts, c.by, seen_variants)
        undo = board_log.add_undo(c)
        args: tuple[Any, ...] = (
            room_id, c.asset_id, c.token_id, c.by, c.x, c.y, c.rotation, c.scale, c.z_index, c.created_at, scene_id,
            c.hidden, fogged, columns["name"], columns["size"], jsonb(columns["bars"]), jsonb(columns["conditions"]),
            columns["name_visibility"], columns["conditions_visibility"], body.pieces, seen_audience,
            copies.pieces if copies is not None else None, c.is_gm, c.is_gm and c.scene_id is not None,
            with_template, context.system_id, context.system_updated_at, unseen_audience,
            c.by if undo is not None else None, undo.encode() if undo is not None else None)
        if fog_version is not None:
            args += (fog_version,)
        row = await self._fetchrow(ADD_SQL[fog_version is not None], args, room_id)
        if row is None:
            self._add_contexts.drop(room_id)  # perhaps stale: read afresh next time
            return None
        version, seen = int(row[0]), bool(row[1])
        audience, variants = (seen_audience, seen_variants) if seen else (unseen_audience, ())
        routing = Routing(audience, tuple((sel, encode_body(etype, room_id, version, ts, c.by, payload))
                                          for sel, etype, payload in variants))
        return StoredEvent(room_id, version, ts, body.fill(version), token, routing)

    async def _one_message(self, room_id: str, c: PostMessage
                            ) -> StoredEvent[dict[str, Any]] | None:
        if c.to:
            return None  # a whisper: the transaction checks its recipients
        ts = wire.now_ms()
        payload, result = c.payload(ROOM_VERSION)
        template = body_template(c.etype, room_id, ts, c.by, payload)
        args = (room_id, c.message_id, c.by, c.kind, c.text, None if c.roll is None else orjson.dumps(c.roll).decode(),
                c.created_at, template.pieces, c.visibility, c.audience)
        row = await self._fetchrow(_LOG_SQL, args, room_id)
        if row is None:
            return None
        version = int(row[0])
        if c.roll is None:
            result = result | {"version": version}
        return StoredEvent(room_id, version, ts, template.fill(version), result, c.routing)

    async def _one_presence(self, room_id: str, c: SetPresence
                            ) -> StoredEvent[None] | None:
        if not c.profile:
            return None  # a player whose instance died: the transaction reads the profile
        ts = wire.now_ms()
        etype = ev.PLAYER_JOINED if c.online else ev.PLAYER_LEFT
        payload: dict[str, Any] = {"user": c.profile}
        if c.online:
            if not c.role:
                return None  # player.joined carries the role: the transaction reads it
            payload["role"] = c.role
        template = body_template(etype, room_id, ts, c.user_id, payload)
        row = await self._fetchrow(_PRESENCE_SQL, (room_id, c.user_id, c.online, template.pieces), room_id)
        if row is None:
            return None
        version = int(row[0])
        return StoredEvent(room_id, version, ts, template.fill(version), None)


_ONE_STATEMENT: dict[type[Any], Callable[[PgEventLog, str, Any], Awaitable[StoredEvent[Any] | None]]] = {
    AddToken: PgEventLog._one_add_token,
    PostMessage: PgEventLog._one_message,
    SetPresence: PgEventLog._one_presence,
}

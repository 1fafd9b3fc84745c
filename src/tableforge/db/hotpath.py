"""Stored room events in one statement on PostgreSQL: the hot path of play.

The transactional path (BEGIN; take the room version; change the row with its guards; store the
event; COMMIT) costs five round trips and a pool connection held across all of them. Here the same
work is one data-modifying CTE sent in autocommit mode on the raw asyncpg connection (a prepared
statement, cached per connection): one round trip, and one statement is atomic.

Guarantees kept:
- The room row is updated first (`UPDATE game_rooms … RETURNING version`), so the room row lock is
  taken before the token row lock, in the same order as the transactional path (no deadlocks), and
  versions rise by exactly one per stored event, on any number of instances.
- The guards (room active, token in room, owner unless GM, `if_version`) sit in the WHERE clauses.
  The room is only bumped if the token matched in the statement's snapshot; if a concurrent change
  made the token fail its guards after that (re-checked under the row lock), the event row gets a
  NULL body, the NOT NULL constraint aborts the whole statement, and nothing is changed: no gap.
- The event body carries the version, so it is assembled in SQL from text pieces the caller built
  (`head || room_version || mid || token_version || '}'`); the caller rebuilds the same bytes.

A statement that changed nothing returns None; callers then take the transactional path, which
applies the change if it has become valid or raises the precise error (off the hot path).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db.engine import Database, unavailable
from tableforge.domain.errors import Unavailable
from tableforge.observability import metrics

_PRUNE_EVERY = 100


def _move_sql(owner_guard: bool, version_guard: bool) -> str:
    guard = "t.id = $2 AND t.room_id = $1"
    n = 6
    if owner_guard:
        n += 1
        guard += f" AND t.owner_id = ${n}"
    if version_guard:
        n += 1
        guard += f" AND t.version = ${n}"
    return f"""
WITH room AS (
    UPDATE game_rooms SET version = version + 1
    WHERE id = $1 AND is_active AND EXISTS (SELECT 1 FROM board_tokens t WHERE {guard})
    RETURNING version
), tok AS (
    UPDATE board_tokens t SET x = $3, y = $4, version = t.version + 1
    FROM room
    WHERE {guard}
    RETURNING room.version AS rv, t.version AS tv
), ev AS (
    INSERT INTO room_events (room_id, version, body)
    SELECT $1, room.version, $5::text || room.version || $6::text || tok.tv || '}}'
    FROM room LEFT JOIN tok ON true
)
SELECT rv, tv FROM tok"""


_MOVE_SQL = {(o, v): _move_sql(o, v) for o in (False, True) for v in (False, True)}

# chat.message / dice.rolled: the message row and its event. The body is `pieces` joined with the
# room version (it may appear more than once: the event's and the message's).
_LOG_SQL = """
WITH room AS (
    UPDATE game_rooms SET version = version + 1 WHERE id = $1 AND is_active RETURNING version
), msg AS (
    INSERT INTO room_messages (id, room_id, user_id, kind, text, roll, version, created_at)
    SELECT $2, $1, $3, $4, $5, $6::jsonb, room.version, $7 FROM room
    RETURNING version
), ev AS (
    INSERT INTO room_events (room_id, version, body)
    SELECT $1, msg.version, array_to_string($8::text[], msg.version::text) FROM msg
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

# token.added: the asset must be one of the room's (checked before the room is bumped; an asset
# deleted meanwhile fails the foreign key and aborts it all).
_ADD_TOKEN_SQL = """
WITH room AS (
    UPDATE game_rooms SET version = version + 1
    WHERE id = $1 AND is_active AND EXISTS (SELECT 1 FROM game_assets WHERE id = $2 AND room_id = $1)
    RETURNING version
), tok AS (
    INSERT INTO board_tokens (id, room_id, asset_id, owner_id, x, y, rotation, scale, z_index, version, created_at)
    SELECT $3, $1, $2, $4, $5, $6, $7, $8, $9, 1, $10 FROM room
), ev AS (
    INSERT INTO room_events (room_id, version, body)
    SELECT $1, room.version, array_to_string($11::text[], room.version::text) FROM room
)
SELECT version FROM room"""

_PRUNE_SQL = "DELETE FROM room_events WHERE room_id = $1 AND version <= $2"

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
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _open(self) -> AsyncConnection:
        self.count += 1
        try:
            conn = self.db.engine.connect()
            await conn.start()
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
            self._reaper = asyncio.create_task(self._reap(), name="hotpath-lanes-reaper")
        while True:
            if self._idle.empty() and self.count < self.size:
                return await self._open()
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
                    raw: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
                    await raw.execute("SELECT 1")
                except Exception:
                    await self.discard(conn)
                    continue
            return conn

    def release(self, conn: AsyncConnection) -> None:
        self._idle.put_nowait((conn, time.monotonic(), self.epoch))

    async def discard(self, conn: AsyncConnection) -> None:
        self.count -= 1
        self.epoch += 1
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
                with contextlib.suppress(Exception):
                    await item[0].close()


_lanes: dict[int, Lanes] = {}


def _lanes_for(db: Database) -> Lanes:
    lanes = _lanes.get(id(db))
    if lanes is None:
        lanes = _lanes[id(db)] = Lanes(db, max(1, min(6, db.settings.db_pool_max // 3)))

        async def give_back() -> None:
            _lanes.pop(id(db), None)
            await lanes.close()

        db.on_dispose(give_back)  # the lanes go back to the pool before the engine is disposed
    return lanes


async def _fetchrow(db: Database, sql: str, args: tuple[Any, ...], room_id: str, version_col: int,
                    history_size: int) -> Any:
    """Run one statement in autocommit mode on a lane; map failures like `Database.write` does.

    A statement that aborted on a constraint (the race described above) returns None."""
    start = time.perf_counter()
    lanes = _lanes_for(db)
    try:
        conn = await lanes.acquire()
        try:
            raw: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
            row = await raw.fetchrow(sql, *args)
            if row is not None and history_size and int(row[version_col]) % _PRUNE_EVERY == 0:
                await raw.execute(_PRUNE_SQL, room_id, int(row[version_col]) - history_size)
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
        metrics.DB_TRANSACTION_SECONDS.observe(time.perf_counter() - start)
    return row


async def move(db: Database, room_id: str, token_id: str, x: float, y: float, owner_id: str | None,
               if_version: int | None, head: str, mid: str, history_size: int) -> tuple[int, int] | None:
    """Move a token and store its event; returns (room version, token version), or None if nothing
    matched (room closed or missing, token missing or not the caller's, stale `if_version`, a race).

    `owner_id` is None for the GM (any token). The stored body is
    `head + str(room_version) + mid + str(token_version) + "}"`."""
    args: tuple[Any, ...] = (room_id, token_id, x, y, head, mid)
    if owner_id is not None:
        args += (owner_id,)
    if if_version is not None:
        args += (if_version,)
    row = await _fetchrow(db, _MOVE_SQL[owner_id is not None, if_version is not None], args, room_id, 0,
                          history_size)
    return None if row is None else (int(row[0]), int(row[1]))


async def log_message(db: Database, room_id: str, message_id: str, user_id: str, kind: str, text: str,
                      roll_json: str | None, created_at: Any, pieces: list[str], history_size: int) -> int | None:
    """Insert a chat/dice message and its event; returns the room version, or None if the room is
    closed or missing. The stored body is `str(version).join(pieces)`."""
    row = await _fetchrow(db, _LOG_SQL, (room_id, message_id, user_id, kind, text, roll_json, created_at, pieces),
                          room_id, 0, history_size)
    return None if row is None else int(row[0])


async def presence(db: Database, room_id: str, user_id: str, online: bool, pieces: list[str],
                   history_size: int) -> int | None:
    """Set the player's is_online and store its player.joined/left event; returns the room version,
    or None if the room is closed or missing or the user is no longer a member. The stored body is
    `str(version).join(pieces)`."""
    row = await _fetchrow(db, _PRESENCE_SQL, (room_id, user_id, online, pieces), room_id, 0, history_size)
    return None if row is None else int(row[0])


async def add_token(db: Database, room_id: str, asset_id: str, token: dict[str, Any], created_at: Any,
                    pieces: list[str], history_size: int) -> int | None:
    """Place a token (`token`: id, owner_id, x, y, rotation, scale, z_index) and store its event;
    returns the room version, or None if the room is closed or missing or the asset is not the
    room's. The stored body is `str(version).join(pieces)`."""
    args = (room_id, asset_id, token["id"], token["owner_id"], token["x"], token["y"], token["rotation"],
            token["scale"], token["z_index"], created_at, pieces)
    row = await _fetchrow(db, _ADD_TOKEN_SQL, args, room_id, 0, history_size)
    return None if row is None else int(row[0])

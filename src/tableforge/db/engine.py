"""The database engine(s) and the two ways to use them: `read()` and `write()`.

PostgreSQL: one asyncpg pool, sized by the PROTOCOL.md settings (how they map onto SQLAlchemy's
pool, and how to size it against workers: `tableforge.db.pool`), with a per-connection statement
timeout and a pre-ping, so that after a PostgreSQL restart the pool heals by itself: requests
caught mid-flight fail with 503 `db_unavailable`, the next ones get fresh connections.
SQLite (embedded mode): WAL mode, a reader pool and a single writer connection, so that writes
queue inside the process instead of failing with SQLITE_BUSY.

Timing: every statement's duration is checked against `TABLEFORGE_DB_SLOW_QUERY_MS` (a structlog
warning with the statement, truncated); `Database.timed("name")` records a named query or group
of queries in `tableforge_db_query_seconds{query=name}` (names only: never SQL as a label).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, IntegrityError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tableforge.config import Settings
from tableforge.db import pool as pool_metrics
from tableforge.domain.errors import Unavailable
from tableforge.observability import metrics

log = structlog.get_logger("tableforge.db")


class Database:
    """Engine plus the transaction helpers every service uses."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.sqlalchemy_url
        self._dispose_hooks: list[Callable[[], Awaitable[None]]] = []
        # PostgreSQL: closes the connections above MIN that sat idle (tableforge.db.pool.housekeep).
        # Started by the first checkout, since the engine may be built before the event loop runs.
        self._housekeeper: asyncio.Task[None] | None = None
        self.is_postgres = self.url.startswith("postgresql")
        if self.is_postgres:
            self.engine = _postgres_engine(settings)
            self.writer = self.engine
            self.pools = {"main": pool_metrics.PoolState("main", settings.db_idle_timeout, keep=settings.db_pool_min)}
        else:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(self.url, pool_size=4)
            self.writer = _sqlite_engine(self.url, pool_size=1)
            # A file connection does not go stale, so SQLite keeps its connections (no idle timeout).
            self.pools = {"sqlite-read": pool_metrics.PoolState("sqlite-read", None, keep=4),
                          "sqlite-write": pool_metrics.PoolState("sqlite-write", None, keep=1)}
        # Same pool; connections checked out through it run in autocommit (see `read`).
        self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT") if self.is_postgres \
            else self.engine
        self._engines = {name: eng for name, eng in zip(self.pools, (self.engine, self.writer), strict=False)}
        for name, state in self.pools.items():
            pool_metrics.instrument(self._engines[name], state)
        global _slow_query_ms
        _slow_query_ms = settings.db_slow_query_ms
        _log_slow_statements(self.engine, settings.db_slow_query_ms)
        if self.writer is not self.engine:
            _log_slow_statements(self.writer, settings.db_slow_query_ms)

    @property
    def dialect(self) -> str:
        return "postgresql" if self.is_postgres else "sqlite"

    @asynccontextmanager
    async def _checkout(self, engine: AsyncEngine, *, begin: bool) -> AsyncIterator[AsyncConnection]:
        """A pooled connection, with the wait for it measured (and counted while it lasts)."""
        if self.is_postgres:
            state = self.pools["main"]
            if self._housekeeper is None or self._housekeeper.done():
                self._start_housekeeping()
        else:
            state = self.pools["sqlite-write" if engine is self.writer else "sqlite-read"]
        conn = engine.connect()
        started = state.begin_wait()
        try:
            await conn.start()
        except BaseException as exc:
            state.end_wait(started, timed_out=isinstance(exc, PoolTimeout))
            raise
        state.end_wait(started)
        try:
            if begin:
                async with conn.begin():
                    yield conn
            else:
                yield conn
        finally:
            await conn.close()

    def _start_housekeeping(self) -> None:
        s = self.settings
        self._housekeeper = asyncio.get_running_loop().create_task(pool_metrics.housekeep(
            self.engine, self.pools["main"], keep=s.db_pool_min, idle_timeout=s.db_idle_timeout,
            close_timeout=s.db_connection_timeout), name="db-pool-housekeeping")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads. PostgreSQL: autocommit, so a read is its statements' round trips
        only (no BEGIN and ROLLBACK around them); each statement sees its own snapshot, as in READ
        COMMITTED, so reads that must agree are one statement. SQLite: one read transaction (a WAL
        snapshot for all its statements), rolled back."""
        try:
            async with self._checkout(self._reader, begin=False) as conn:
                yield conn
        except _OURS:
            raise
        except (PoolTimeout, DBAPIError, OSError) as exc:
            raise unavailable(exc) from exc

    @asynccontextmanager
    async def read_transaction(self) -> AsyncIterator[AsyncConnection]:
        """Several reads in one transaction, rolled back at the end: they see one snapshot
        (REPEATABLE READ on PostgreSQL; SQLite's read transaction already does), and SET LOCAL and
        savepoints work. For reports; the request paths read with one statement instead."""
        try:
            async with self._checkout(self.engine, begin=False) as conn:
                if self.is_postgres:
                    await conn.execution_options(isolation_level="REPEATABLE READ")
                yield conn
        except _OURS:
            raise
        except (PoolTimeout, DBAPIError, OSError) as exc:
            raise unavailable(exc) from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction: committed on success, rolled back on any error; its duration is a metric."""
        start = time.perf_counter()
        try:
            async with self._checkout(self.writer, begin=True) as conn:
                yield conn
        except _OURS:
            raise
        except (PoolTimeout, DBAPIError, OSError) as exc:
            raise unavailable(exc) from exc
        finally:
            metrics.DB_TRANSACTION_SECONDS.observe(time.perf_counter() - start)

    async def ping(self) -> float:
        """Round-trip time of `SELECT 1` in seconds; raises Unavailable if the database is down."""
        for attempt in (1, 2):
            start = time.perf_counter()
            try:
                async with self.read() as conn:
                    await conn.execute(sa.text("SELECT 1"))
                return time.perf_counter() - start
            except Unavailable:
                if attempt == 2:
                    raise
                # One stale connection (the first use after a restart invalidates the pool): a
                # health check must not report the database down because of it.
        raise AssertionError("unreachable")

    async def serialize(self, conn: AsyncConnection, key: int) -> None:
        """Inside a `write()` transaction: wait until no other transaction holding `key` is open
        (N instances starting at once). PostgreSQL: a transaction-scoped advisory lock; SQLite
        already runs one write transaction at a time."""
        if self.is_postgres:
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def timed(self, name: str) -> AbstractAsyncContextManager[None]:
        """Time a named query (or a group of them, e.g. "snapshot"): see the module-level `timed`."""
        return timed(name)

    def pool_stats(self) -> list[dict[str, Any]]:
        """Each pool's configuration and live state (GET /api/admin/db/pool)."""
        pg_bounds = [(self.settings.db_pool_min, self.settings.db_pool_max)]
        bounds = pg_bounds if self.is_postgres else [(4, 4), (1, 1)]
        return [pool_metrics.stats(self._engines[name], state, pool_min=lo, pool_max=hi)
                for (name, state), (lo, hi) in zip(self.pools.items(), bounds, strict=True)]

    def on_dispose(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` before the engines are disposed (e.g. give kept connections back)."""
        self._dispose_hooks.append(hook)

    async def dispose(self) -> None:
        for hook in self._dispose_hooks:
            await hook()
        self._dispose_hooks.clear()
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            self._housekeeper = None
        await self.engine.dispose()
        if self.writer is not self.engine:
            await self.writer.dispose()


# The slow-query threshold of the process's settings (one Settings per process; set by Database()).
_slow_query_ms: float = 100.0


@asynccontextmanager
async def timed(name: str) -> AsyncIterator[None]:
    """Time a named query (or a group of them) into `tableforge_db_query_seconds{query=name}` and log
    it as slow above TABLEFORGE_DB_SLOW_QUERY_MS. A module-level helper, so that query functions that
    only get a connection can use it. `name` must come from a small fixed set (it is a label)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        metrics.DB_QUERY_BY_NAME[name].observe(elapsed)
        if elapsed * 1000 >= _slow_query_ms:
            log.warning("slow_query", query=name, ms=round(elapsed * 1000, 2), threshold_ms=_slow_query_ms)


# Errors that say something about the statement, not the database's health: callers handle them.
_OURS = (IntegrityError, DataError, ProgrammingError)


def unavailable(exc: BaseException) -> Unavailable:
    """The 503 a caller sees for a database failure: timeout, pool exhausted, or unavailable."""
    text = str(exc).lower()
    if "statement timeout" in text or "canceling statement" in text:
        error = Unavailable("the database query took too long and was cancelled", code="db_timeout")
    elif isinstance(exc, PoolTimeout):
        error = Unavailable("no database connection became free in time", code="db_pool_exhausted")
    else:
        error = Unavailable("the database is unavailable", code="db_unavailable")
    metrics.DB_ERRORS.labels(error.code).inc()
    return error


def _postgres_engine(settings: Settings) -> AsyncEngine:
    connect_args: dict[str, Any] = {
        "server_settings": {
            "statement_timeout": str(int(settings.db_statement_timeout * 1000)),
            "application_name": f"tableforge:{settings.instance_id}"[:63],
            "jit": "off",
        },
        "timeout": settings.db_connection_timeout,
    }
    if settings.db_ssl_mode:
        connect_args["ssl"] = settings.db_ssl_mode
    engine = create_async_engine(
        settings.sqlalchemy_url,
        # Up to MAX, opened on demand and kept while used; the housekeeping closes the ones above
        # MIN after IDLE_TIMEOUT idle (see tableforge.db.pool for why, the mapping and sizing).
        poolclass=pool_metrics.ElasticQueuePool,
        pool_size=settings.db_pool_max,
        max_overflow=0,
        pool_timeout=settings.db_connection_timeout,
        pool_recycle=1800,
        # LIFO: the same few connections stay warm under light load, and the idle timeout can
        # retire the rest. No pre-ping by default: on asyncpg it costs three round trips per
        # checkout (BEGIN; ping; ROLLBACK). After a server restart the first statement on a dead
        # connection fails (503 db_unavailable) and SQLAlchemy then invalidates the whole pool, so
        # the pool still heals by itself; TABLEFORGE_DB_POOL_PRE_PING=true trades speed for that.
        pool_use_lifo=True,
        pool_pre_ping=settings.db_pool_pre_ping,
        connect_args=connect_args,
        json_deserializer=orjson.loads,  # the snapshot is JSON built in SQL: orjson reads it ~5x faster
    )
    if not settings.db_pool_pre_ping:
        _ping_idle_connections(engine)
    _broken_connections_invalidate_the_pool(engine)
    return engine


IDLE_PING_S = 1.0


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Ping a pooled connection before reuse only when it sat idle for over a second.

    A busy pool pays nothing (its connections are never idle that long), and a connection opened
    before a PostgreSQL restart is replaced at checkout instead of failing the first request that
    draws it after the restart (raising DisconnectionError here makes the pool open a new one)."""

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since <= IDLE_PING_S:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("a pooled connection did not survive the idle time") from exc


# asyncpg's errors for a connection that is gone: SQLAlchemy does not recognise all of them as
# disconnects (a server shutting down kills sessions with 57P01 "admin shutdown"), and only a
# recognised disconnect invalidates the rest of the pool, which was opened before the same restart.
_DISCONNECT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "08000", "08003", "08006"})


def _broken_connections_invalidate_the_pool(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "handle_error")
    def _handle_error(context: Any) -> None:
        original = context.original_exception
        cause = getattr(original, "__cause__", None) or original
        sqlstate = getattr(cause, "sqlstate", None)
        if sqlstate in _DISCONNECT_SQLSTATES or isinstance(cause, ConnectionError | OSError) or \
                type(cause).__name__ in ("ConnectionDoesNotExistError", "InterfaceError", "InternalClientError"):
            context.is_disconnect = True


_SLOW_SQL_CHARS = 500


def _log_slow_statements(engine: AsyncEngine, threshold_ms: float) -> None:
    """A structlog warning for any statement slower than the threshold, whoever ran it: the named
    timers see only the queries someone named, this sees everything (including reports)."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before(conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
        conn.info.setdefault("tf_query_start", []).append(time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _after(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
        starts = conn.info.get("tf_query_start")
        if not starts:
            return
        elapsed_ms = (time.perf_counter() - starts.pop()) * 1000
        if elapsed_ms >= threshold_ms:
            log.warning("slow_statement", ms=round(elapsed_ms, 2), threshold_ms=threshold_ms,
                        statement=" ".join(statement.split())[:_SLOW_SQL_CHARS])

    @event.listens_for(engine.sync_engine, "handle_error")
    def _error(context: Any) -> None:
        conn = context.connection
        if conn is not None and conn.info.get("tf_query_start"):
            conn.info["tf_query_start"].pop()


def _sqlite_engine(url: str, *, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=30,
                                 connect_args={"timeout": 30}, json_deserializer=orjson.loads)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see the "begin" hook).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # Before anything writes the file: a new database frees pages a batch at a time (the
        # maintenance job's PRAGMA incremental_vacuum) instead of needing a blocking VACUUM. On an
        # existing database this changes nothing until a VACUUM (see db/housekeeping.py).
        cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # The writer takes the write lock up front: no lock upgrades, so no SQLITE_BUSY deadlocks.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if pool_size == 1 else "BEGIN")

    return engine

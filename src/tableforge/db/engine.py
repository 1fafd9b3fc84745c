"""The database engine(s) and the two ways to use them: `read()` and `write()`.

PostgreSQL: one asyncpg pool, sized by the PROTOCOL.md settings, with a per-connection
statement timeout. SQLite (embedded mode): WAL mode, a reader pool and a single writer
connection, so that writes queue inside the process instead of failing with SQLITE_BUSY.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tableforge.config import Settings
from tableforge.domain.errors import Unavailable
from tableforge.observability import metrics


class Database:
    """Engine plus the transaction helpers every service uses."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.sqlalchemy_url
        self.is_postgres = self.url.startswith("postgresql")
        if self.is_postgres:
            self.engine = _postgres_engine(settings)
            self.writer = self.engine
        else:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(self.url, pool_size=4)
            self.writer = _sqlite_engine(self.url, pool_size=1)

    @property
    def dialect(self) -> str:
        return "postgresql" if self.is_postgres else "sqlite"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (autocommit-style: one implicit transaction, rolled back)."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except _OURS:
            raise
        except (PoolTimeout, DBAPIError, OSError) as exc:
            raise _unavailable(exc) from exc

    @asynccontextmanager
    async def snapshot_read(self) -> AsyncIterator[AsyncConnection]:
        """Several reads that see one consistent state (REPEATABLE READ on PostgreSQL; on SQLite a
        WAL read transaction already does), so a room snapshot's `version` matches its contents."""
        async with self.read() as conn:
            if self.is_postgres:
                await conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction: committed on success, rolled back on any error; its duration is a metric."""
        start = time.perf_counter()
        try:
            async with self.writer.begin() as conn:
                yield conn
        except _OURS:
            raise
        except (PoolTimeout, DBAPIError, OSError) as exc:
            raise _unavailable(exc) from exc
        finally:
            metrics.DB_TRANSACTION_SECONDS.observe(time.perf_counter() - start)

    async def ping(self) -> float:
        """Round-trip time of `SELECT 1` in seconds; raises Unavailable if the database is down."""
        start = time.perf_counter()
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return time.perf_counter() - start

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.writer is not self.engine:
            await self.writer.dispose()


# Errors that say something about the statement, not the database's health: callers handle them.
_OURS = (IntegrityError, DataError, ProgrammingError)


def _unavailable(exc: BaseException) -> Unavailable:
    text = str(exc).lower()
    if "statement timeout" in text or "canceling statement" in text:
        return Unavailable("the database query took too long and was cancelled", code="db_timeout")
    if isinstance(exc, PoolTimeout):
        return Unavailable("no database connection became free in time", code="db_pool_exhausted")
    return Unavailable("the database is unavailable", code="db_unavailable")


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
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_max,
        max_overflow=0,
        pool_timeout=settings.db_connection_timeout,
        pool_recycle=1800,
        pool_use_lifo=True,
        connect_args=connect_args,
    )


def _sqlite_engine(url: str, *, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=30,
                                 connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see the "begin" hook).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
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

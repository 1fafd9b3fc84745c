"""Pool limits, timeouts and recovery on real PostgreSQL: what a request sees when the database is
busy, slow or restarted."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from tableforge.db.engine import Database
from tableforge.db.migrate import upgrade
from tableforge.domain.errors import Unavailable
from tests.db.conftest import pg_settings
from tests.support.services import PG_ADMIN_URL


async def test_pool_exhausted_after_connection_timeout(own_pg_url: str, tmp_path: Path) -> None:
    db = Database(pg_settings(own_pg_url, tmp_path, db_pool_min=1, db_pool_max=2, db_connection_timeout=0.3))
    release = asyncio.Event()

    async def hold() -> None:
        async with db.read() as conn:
            await conn.execute(sa.text("SELECT 1"))
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    try:
        for _ in range(500):  # until both hold a connection
            if sum(p["in_use"] for p in db.pool_stats()) >= 2:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(Unavailable) as err:
            async with db.read() as conn:
                await conn.execute(sa.text("SELECT 1"))
        assert err.value.code == "db_pool_exhausted" and err.value.status == 503
        stats = db.pool_stats()[0]
        assert stats["max"] == 2 and stats["timeouts"] == 1 and stats["waiting"] == 0
    finally:
        release.set()
        await asyncio.gather(*holders)
    # Freed connections serve the next request; the overflow one was closed on return (MIN = 1 kept).
    async with db.read() as conn:
        assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
    assert db.pool_stats()[0]["idle"] == 1
    await db.dispose()


async def test_statement_timeout_cancels_with_db_timeout(own_pg_url: str, tmp_path: Path) -> None:
    db = Database(pg_settings(own_pg_url, tmp_path, db_statement_timeout=0.2))
    with pytest.raises(Unavailable) as err:
        async with db.read() as conn:
            await conn.execute(sa.text("SELECT pg_sleep(5)"))
    assert err.value.code == "db_timeout" and err.value.status == 503
    async with db.write() as conn:  # the connection is fine afterwards
        assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
    await db.dispose()


async def _terminate_backends(database: str) -> int:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        return int(await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()", database))
    finally:
        await conn.close()


async def test_recovers_after_postgres_outage(own_pg_url: str, tmp_path: Path) -> None:
    """Every connection of the pool is killed (a restart when TABLEFORGE_TEST_PG_RESTART=1, else
    pg_terminate_backend on this test database only, which is safe on a shared server). A request
    caught mid-query fails with 503 db_unavailable; the next request succeeds without any help."""
    db = Database(pg_settings(own_pg_url, tmp_path, db_pool_min=3, db_pool_max=5))
    await upgrade(db)
    # Warm the pool: several connections open and idle.
    async def one() -> None:
        async with db.read() as conn:
            await conn.execute(sa.text("SELECT pg_sleep(0.05)"))
    await asyncio.gather(*(one() for _ in range(3)))

    async def caught() -> None:
        async with db.read() as conn:
            await conn.execute(sa.text("SELECT pg_sleep(3)"))

    inflight = asyncio.create_task(caught())
    await asyncio.sleep(0.3)
    if os.environ.get("TABLEFORGE_TEST_PG_RESTART") == "1":
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        await asyncio.to_thread(subprocess.run, ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main",
                                                 "restart"], check=True)
    else:
        assert await _terminate_backends(own_pg_url.rsplit("/", 1)[1]) >= 1
    with pytest.raises(Unavailable) as err:
        await inflight
    assert err.value.code == "db_unavailable"

    for _ in range(3):  # every pooled connection was dead; each request still succeeds
        async with db.write() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM users"))).scalar() == 0
    assert db.pool_stats()[0]["invalidated"] >= 1
    await db.dispose()

"""Pool limits, timeouts and recovery on real PostgreSQL: what a request sees when the database is
busy, slow or restarted (restarts on a private cluster, never the shared one)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from tableforge.db.engine import Database
from tableforge.db.migrate import upgrade
from tableforge.domain.errors import Unavailable
from tests.db.conftest import pg_settings
from tests.support.private_postgres import PrivatePostgres
from tests.support.services import PG_ADMIN_URL
from tests.support.waiting import eventually, wait_until

# Queries to be caught mid-way (each text is unique to its test, to find it in pg_stat_activity)
SLEEP_10 = "SELECT pg_sleep(10) /* caught by a restart */"
SLEEP_3 = "SELECT pg_sleep(3) /* caught by pg_terminate_backend */"


async def test_pool_exhausted_after_connection_timeout(own_pg_url: str, tmp_path: Path) -> None:
    db = Database(pg_settings(own_pg_url, tmp_path, db_pool_min=1, db_pool_max=2, db_connection_timeout=0.3))
    release = asyncio.Event()

    async def hold() -> None:
        async with db.read() as conn:
            await conn.execute(sa.text("SELECT 1"))
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    try:
        await wait_until(lambda: sum(p["in_use"] for p in db.pool_stats()) >= 2, what="both holding a connection")
        with pytest.raises(Unavailable) as err:
            async with db.read() as conn:
                await conn.execute(sa.text("SELECT 1"))
        assert err.value.code == "db_pool_exhausted" and err.value.status == 503
        stats = db.pool_stats()[0]
        assert stats["max"] == 2 and stats["timeouts"] == 1 and stats["waiting"] == 0
    finally:
        release.set()
        await asyncio.gather(*holders)
    # Freed connections serve the next request, and both stay open: the one above MIN = 1 is closed
    # only after TABLEFORGE_DB_IDLE_TIMEOUT idle (30 s here), not on return.
    async with db.read() as conn:
        assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
    stats = db.pool_stats()[0]
    assert stats["idle"] == 2 and stats["overflow"] == 1 and stats["connects"] == 2
    await db.dispose()


async def _hold_at_once(db: Database, n: int) -> None:
    """`n` requests holding a connection at the same time (so the pool has `n` open), then none."""
    barrier = asyncio.Barrier(n)

    async def one() -> None:
        async with db.read() as conn:
            await conn.execute(sa.text("SELECT 1"))
            await barrier.wait()

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), 30)


async def _server_connections(database_url: str, application_name: str) -> int:
    """The connections PostgreSQL itself sees from one Database (by its application_name)."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
            application_name))
    finally:
        await conn.close()


async def test_steady_load_above_min_opens_no_connections(own_pg_url: str, tmp_path: Path) -> None:
    """Six requests at a time against MIN 2 / MAX 8: after the warm-up the pool keeps its six
    connections and opens none, however many requests follow (it used to close every connection
    above MIN on return and open a new one for nearly every request beyond MIN)."""
    db = Database(pg_settings(own_pg_url, tmp_path, db_pool_min=2, db_pool_max=8, db_idle_timeout=30,
                              instance_id="pool-steady"))
    workers, rounds = 6, 40
    await _hold_at_once(db, workers)
    warm = db.pool_stats()[0]
    assert warm["connects"] == workers and warm["size"] == workers and warm["overflow"] == workers - 2

    done = [0] * workers

    async def steady(i: int) -> None:
        for _ in range(rounds):
            async with db.read() as conn:
                await conn.execute(sa.text("SELECT pg_sleep(0.002)"))
            done[i] += 1

    await asyncio.wait_for(asyncio.gather(*(steady(i) for i in range(workers))), 60)
    assert sum(done) == workers * rounds
    after = db.pool_stats()[0]
    assert after["connects"] == workers, after  # not one connection opened by the steady load
    assert after["size"] == workers and after["idle"] == workers and after["invalidated"] == 0
    assert await _server_connections(own_pg_url, "tableforge:pool-steady") == workers
    await db.dispose()


async def test_pool_shrinks_to_min_after_idle_timeout(own_pg_url: str, tmp_path: Path) -> None:
    """After a burst of 6 at once (MIN 2, MAX 8, IDLE_TIMEOUT 0.5 s) and nothing else, the pool
    closes the 4 connections above MIN by itself (without opening any), and PostgreSQL sees 2
    connections left; the next requests are served by a pool of 2."""
    db = Database(pg_settings(own_pg_url, tmp_path, db_pool_min=2, db_pool_max=8, db_idle_timeout=0.5,
                              instance_id="pool-shrink"))
    await _hold_at_once(db, 6)
    assert db.pool_stats()[0]["connects"] == 6
    await wait_until(lambda: db.pool_stats()[0]["size"] == 2, within=20, what="the pool back to MIN")
    stats = db.pool_stats()[0]
    assert stats["idle"] == 2 and stats["in_use"] == 0 and stats["overflow"] == 0 and stats["connects"] == 6
    await eventually(lambda: _is(_server_connections(own_pg_url, "tableforge:pool-shrink"), 2), within=20,
                     what="PostgreSQL to see 2 connections")
    for _ in range(3):  # the two kept ones serve (one may be replaced: it too sat idle over 0.5 s)
        async with db.read() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
    assert db.pool_stats()[0]["size"] == 2
    await db.dispose()


async def _is(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_statement_timeout_cancels_with_db_timeout(own_pg_url: str, tmp_path: Path) -> None:
    db = Database(pg_settings(own_pg_url, tmp_path, db_statement_timeout=0.2))
    with pytest.raises(Unavailable) as err:
        async with db.read() as conn:
            await conn.execute(sa.text("SELECT pg_sleep(5)"))
    assert err.value.code == "db_timeout" and err.value.status == 503
    async with db.write() as conn:  # the connection is fine afterwards
        assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
    await db.dispose()


async def _query_running(database_url: str, sql: str) -> None:
    """Wait until PostgreSQL itself reports `sql` as running in that database (pg_stat_activity),
    so that what the test does next really catches it mid-query."""
    conn = await asyncpg.connect(database_url)
    try:
        async def running() -> bool:
            return bool(await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
                "AND query = $1", sql))
        await eventually(running, what=f"{sql!r} running")
    finally:
        await conn.close()


async def _terminate_backends(database: str) -> int:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        return int(await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()", database))
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def private_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    """A PostgreSQL of this module's own, to restart for real (never the shared one)."""
    pg = PrivatePostgres(tmp_path_factory.mktemp("private-pg"))
    try:
        pg.start()
        yield pg
    finally:
        pg.close()


async def _warm(db: Database, connections: int) -> None:
    """Several connections open and idle in the pool."""
    async def one() -> None:
        async with db.read() as conn:
            await conn.execute(sa.text("SELECT pg_sleep(0.05)"))
    await asyncio.gather(*(one() for _ in range(connections)))


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_recovers_after_postgres_outage(private_pg: PrivatePostgres, mode: str, tmp_path: Path) -> None:
    """PostgreSQL restarts for real (a private cluster: `fast` = clean shutdown, `immediate` = a crash
    and crash recovery). A request caught mid-query fails with 503 db_unavailable, and so does one
    made while it is down (at once, no hang); once it is back the next requests succeed without help."""
    db = Database(pg_settings(private_pg.url, tmp_path, db_pool_min=3, db_pool_max=5, db_connection_timeout=5))
    await upgrade(db)
    await _warm(db, 3)

    async def caught() -> None:
        async with db.read() as conn:
            await conn.execute(sa.text(SLEEP_10))

    inflight = asyncio.create_task(caught())
    await _query_running(private_pg.url, SLEEP_10)
    await asyncio.to_thread(private_pg.stop, mode)
    with pytest.raises(Unavailable) as err:
        await asyncio.wait_for(inflight, 10)
    assert err.value.code == "db_unavailable"
    with pytest.raises(Unavailable) as down:  # nobody listening: refused at once, not a hang
        async with db.write() as conn:
            await asyncio.wait_for(conn.execute(sa.text("SELECT 1")), 10)
    assert down.value.code == "db_unavailable" and down.value.status == 503

    await asyncio.to_thread(private_pg.start)
    for _ in range(3):  # every pooled connection was dead; each request still succeeds
        async with db.write() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM users"))).scalar() == 0
    assert db.pool_stats()[0]["invalidated"] >= 1
    await db.dispose()


async def test_recovers_after_backends_terminated(own_pg_url: str, tmp_path: Path) -> None:
    """The server stays up but kills every connection of the pool (pg_terminate_backend on this
    test database only, which is safe on the shared server; also what an admin, an idle timeout
    or a proxy does). A request caught mid-query fails with 503 db_unavailable; the next request
    succeeds without any help."""
    db = Database(pg_settings(own_pg_url, tmp_path, db_pool_min=3, db_pool_max=5))
    await upgrade(db)
    await _warm(db, 3)

    async def caught() -> None:
        async with db.read() as conn:
            await conn.execute(sa.text(SLEEP_3))

    inflight = asyncio.create_task(caught())
    await _query_running(own_pg_url, SLEEP_3)
    assert await _terminate_backends(own_pg_url.rsplit("/", 1)[1]) >= 1
    with pytest.raises(Unavailable) as err:
        await inflight
    assert err.value.code == "db_unavailable"

    for _ in range(3):  # every pooled connection was dead; each request still succeeds
        async with db.write() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM users"))).scalar() == 0
    assert db.pool_stats()[0]["invalidated"] >= 1
    await db.dispose()

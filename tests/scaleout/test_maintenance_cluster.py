"""Two real instances (PostgreSQL + Redis) with second-long schedules and a 2 s lease: one instance
at a time runs the maintenance jobs (no two runs of a job overlap, no slot succeeds twice); when
the holder is killed with `kill -9`, the other takes the lease and runs the next slots, and the
run the dead one left behind is marked abandoned."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.accounts import make_admin
from tests.support.client import Api
from tests.support.cluster import Cluster
from tests.support.services import require_postgres, temp_database
from tests.support.waiting import eventually

PERIODIC = {"sessions": "1s", "event_history": "1s", "assets": "2s", "optimize": "3s"}
ENV = {"TABLEFORGE_MAINTENANCE_LEASE_SECONDS": "2", "TABLEFORGE_MAINTENANCE_START_DELAY": "0",
       "TABLEFORGE_MAINTENANCE_WARM_CATALOG_SCHEDULE": "start",
       **{f"TABLEFORGE_MAINTENANCE_{job.upper()}_SCHEDULE": every for job, every in PERIODIC.items()}}


@pytest.fixture(scope="module")
def own_pg_url() -> Iterator[str]:
    """A database of this module's own: the runs it holds are this cluster's only."""
    require_postgres()
    with temp_database() as url:
        yield url


@pytest.fixture
def pair(own_pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(2, own_pg_url, redis_url, tmp_path / "data", **ENV).start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def pg(own_pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(own_pg_url)
    yield conn
    await conn.close()


async def _runs(pg: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await pg.fetch("SELECT id, job, trigger, slot, instance_id, started_at, finished_at, outcome "
                          "FROM maintenance_runs ORDER BY id")
    return [dict(r) for r in rows]


def _check_one_at_a_time(runs: list[dict[str, Any]]) -> None:
    """No two runs of a job overlap in time; no slot of a job succeeds twice."""
    for job in (*PERIODIC, "warm_catalog"):
        mine = sorted((r for r in runs if r["job"] == job), key=lambda r: r["started_at"])
        for earlier, later in itertools.pairwise(mine):
            assert earlier["finished_at"] is not None and later["started_at"] >= earlier["finished_at"], (job, mine)
        done = [r["slot"] for r in mine if r["outcome"] == "ok" and r["slot"] is not None]
        assert len(done) == len(set(done)), (job, done)


async def _holder(api: Api, headers: dict[str, str]) -> str | None:
    r = await api.http.get("/api/admin/maintenance", headers=headers)
    assert r.status_code == 200, r.text
    holder = r.json()["lease"]["holder"]
    return str(holder) if holder else None


async def test_one_instance_runs_the_jobs_and_the_other_takes_over_after_kill_9(
        pair: Cluster, pg: asyncpg.Connection) -> None:
    async def every_job_ran_twice() -> bool:
        ok = [r for r in await _runs(pg) if r["outcome"] == "ok" and r["trigger"] == "schedule"]
        return all(sum(1 for r in ok if r["job"] == job) >= 2 for job in PERIODIC)

    await eventually(every_job_ran_twice, within=90, what="two scheduled runs of every job")
    before = await _runs(pg)
    _check_one_at_a_time([r for r in before if r["outcome"] != "running"])
    warm = [r for r in before if r["job"] == "warm_catalog"]
    assert warm and all(r["trigger"] == "start" for r in warm)

    survivors = {pair.instance_id(0): 1, pair.instance_id(1): 0}
    async with Api(pair.servers[0].base_url) as api0, Api(pair.servers[1].base_url) as api1:
        admin = await make_admin(api0, pair.env)
        holder = await _holder(api0, admin.headers)
        assert holder in survivors and await _holder(api1, admin.headers) == holder  # both see one holder
        # the CLI, a process of its own, reads the same holder from Redis
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tableforge", "maintenance", "list", "--json",
            env={**os.environ, **pair.env, "TABLEFORGE_LOG_LEVEL": "WARNING"}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        lease = json.loads(out)["lease"]
        assert lease["backend"] == "redis" and lease["holder"] == holder and lease["held_here"] is False
        # the holder ran the latest runs
        latest = {job: max((r for r in before if r["job"] == job), key=lambda r: r["id"]) for job in PERIODIC}
        assert {r["instance_id"] for r in latest.values()} <= {holder}
        other = survivors[holder]
        dead_index = 1 - other
        killed_at = max(r["id"] for r in await _runs(pg))
        pair.servers[dead_index].kill()  # SIGKILL: no release, no goodbye
        other_id = pair.instance_id(other)
        other_api = api1 if other == 1 else api0

        async def taken_over() -> bool:
            return await _holder(other_api, admin.headers) == other_id

        await eventually(taken_over, within=30, what="the other instance to take the lease")

        async def next_runs_by_the_other() -> bool:
            after = [r for r in await _runs(pg) if r["id"] > killed_at]
            return all(any(r["job"] == job and r["instance_id"] == other_id and r["outcome"] == "ok" for r in after)
                       for job in PERIODIC)

        await eventually(next_runs_by_the_other, within=60, what="every job run by the other instance")

    async def nothing_left_running_by_the_dead() -> bool:
        return not [r for r in await _runs(pg) if r["instance_id"] == holder and r["outcome"] == "running"]

    await eventually(nothing_left_running_by_the_dead, within=30, what="the dead holder's run marked abandoned")
    final = await _runs(pg)
    _check_one_at_a_time([r for r in final if r["outcome"] != "running"])
    by_dead = [r for r in final if r["instance_id"] == holder]
    assert {r["outcome"] for r in by_dead} <= {"ok", "abandoned"}
    never = datetime.min.replace(tzinfo=UTC)
    for job in PERIODIC:  # the other ran the slots after those the dead one did, not the same ones again
        last_dead = max((r["slot"] for r in by_dead if r["job"] == job and r["slot"] and r["outcome"] == "ok"),
                        default=never)
        taken = [r for r in final if r["job"] == job and r["instance_id"] == other_id and r["outcome"] == "ok"]
        assert taken and all(r["slot"] > last_dead for r in taken if r["trigger"] == "schedule")

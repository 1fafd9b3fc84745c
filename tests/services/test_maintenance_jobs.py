"""The maintenance jobs and scheduler in-process, on an embedded runtime (SQLite in a temp dir):
the asset collector deletes exactly the files nothing names (and never one an upload is claiming),
a failing job is recorded and the scheduler goes on, a run that must stop (a stop, or another
process declaring it dead) stops and says so, warming fills the cache."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tableforge.config import Settings
from tableforge.db import maintenance_runs as runs
from tableforge.db import migrate
from tableforge.db.schema import game_assets, maintenance_runs
from tableforge.observability import maintenance_metrics as m
from tableforge.services import assets, catalog_seed, rooms, systems, users
from tableforge.services.maintenance import asset_gc, jobs, runner, scheduler, status
from tableforge.services.runtime import Runtime
from tableforge.wiring.backends import build_runtime
from tests.support.client import png_bytes
from tests.support.waiting import eventually, wait_until

MakeRuntime = Callable[..., Awaitable[Runtime]]
DAY = 86400.0


@pytest.fixture
async def make_rt(tmp_path: Path) -> AsyncIterator[MakeRuntime]:
    made: list[Runtime] = []

    async def make(**overrides: Any) -> Runtime:
        settings = Settings(**{"data_dir": tmp_path / f"data{len(made)}", "database_url": None, "redis_url": None,
                               "seed_catalog": False, "instance_id": f"test-{uuid.uuid4().hex[:6]}",
                               "maintenance_start_delay": 0, **overrides})
        rt = build_runtime(settings)
        await rt.cache.start()
        await migrate.upgrade(rt.db)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        await scheduler.stop(rt)
        for task in list(rt.background):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await rt.cache.close()
        await rt.db.dispose()


async def _runs(rt: Runtime, job: str) -> list[dict[str, Any]]:
    async with rt.db.read() as conn:
        return [dict(r) for r in (await conn.execute(sa.select(maintenance_runs).where(maintenance_runs.c.job == job)
                                                      .order_by(maintenance_runs.c.id))).mappings()]


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


async def test_the_collector_deletes_exactly_the_old_files_nothing_names(make_rt: MakeRuntime) -> None:
    rt = await make_rt(maintenance_asset_grace=3600)
    root = rt.settings.assets_dir
    gm = await users.create_user(rt, "gm", "correct horse")
    room = await rooms.create(rt, gm, "Table", None)
    other = await rooms.create(rt, gm, "Other", None)

    async def upload(color: str, room_id: str) -> dict[str, Any]:
        return await assets.upload(rt, gm, room_id, color, f"{color}.png", png_bytes(color=color))

    used = await upload("red", room["id"])  # named: stays, however old
    shared = await upload("yellow", room["id"])
    await upload("yellow", other["id"])  # the same file, named by a second row
    await assets.delete(rt, gm, shared["id"])  # one row goes; the file stays for the other
    dropped = await upload("purple", room["id"])  # its row is deleted behind the server's back: a crash
    async with rt.db.write() as conn:
        await conn.execute(sa.delete(game_assets).where(game_assets.c.id == dropped["id"]))
    gone = await upload("orange", room["id"])  # a row whose file is lost
    (root / gone["sha256"][:2] / f"{gone['sha256']}.png").unlink()

    def stray(color: str) -> Path:  # a file on disk no row has ever named
        data = png_bytes(color=color)
        sha = hashlib.sha256(data).hexdigest()
        path = root / sha[:2] / f"{sha}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    old_stray, new_stray = stray("blue"), stray("green")
    old_temp = old_stray.with_name(f"{old_stray.name}.4242.abcdef012345.tmp")
    new_temp = new_stray.with_name(f"{new_stray.name}.4242.abcdef012345.tmp")
    old_temp.write_bytes(b"half an upload")
    new_temp.write_bytes(b"an upload in progress")
    foreign = [root / "README.txt", root / old_stray.parent.name / "notes.png"]  # not names this server makes
    for path in foreign:
        path.write_text("the operator's")
    set_aside = await upload("white", room["id"])  # a crashed collector left it set aside
    white = root / set_aside["sha256"][:2] / f"{set_aside['sha256']}.png"
    white.rename(white.with_name(white.name + ".gc-0badc0de"))
    for path in [*root.rglob("*.*")]:
        if path not in (new_stray, new_temp):
            _age(path, DAY)
    before = _files(root)

    summary = await asset_gc.collect(rt)

    purple = f"{dropped['sha256'][:2]}/{dropped['sha256']}.png"
    blue = str(old_stray.relative_to(root))
    assert _files(root) == (before - {purple, blue, str(old_temp.relative_to(root)),
                                      str(white.relative_to(root)) + ".gc-0badc0de"}) | {str(white.relative_to(root))}
    for kept in (used, shared):
        assert (root / kept["sha256"][:2] / f"{kept['sha256']}.png").is_file()
    assert summary["deleted_files"] == 2 and summary["deleted_bytes"] == len(png_bytes(color="purple")) + len(
        png_bytes(color="blue"))
    assert summary["temp_files_deleted"] == 1 and summary["recent_unreferenced"] == 1 and summary["put_back"] == 0
    assert summary["rows_missing_file"] == 1 and summary["rows_missing_file_examples"] == [gone["id"]]
    again = await asset_gc.collect(rt)
    assert again["deleted_files"] == 0 and again["temp_files_deleted"] == 0


async def test_a_file_claimed_between_the_scan_and_the_delete_is_put_back(make_rt: MakeRuntime) -> None:
    rt = await make_rt(maintenance_asset_grace=3600)
    root = rt.settings.assets_dir
    gm = await users.create_user(rt, "gm", "correct horse")
    room = await rooms.create(rt, gm, "Table", None)
    cutoff = time.time() - 3600
    # 1. a row names it by the time the collector looks again (an upload finished meanwhile)
    claimed = await assets.upload(rt, gm, room["id"], "map", "map.png", png_bytes(color="red"))
    path = root / claimed["sha256"][:2] / f"{claimed['sha256']}.png"
    _age(path, DAY)
    assert await asset_gc._delete_unnamed(rt, [(path, claimed["sha256"])], cutoff) == (0, 0, 1)
    assert path.is_file() and list(path.parent.glob("*.gc-*")) == []
    # 2. no row yet, but an upload of the same bytes touched it just before it was set aside
    data = png_bytes(color="teal")
    sha = hashlib.sha256(data).hexdigest()
    fresh = root / sha[:2] / f"{sha}.png"
    fresh.parent.mkdir(parents=True, exist_ok=True)
    fresh.write_bytes(data)
    assert await asset_gc._delete_unnamed(rt, [(fresh, sha)], cutoff) == (0, 0, 1)
    assert fresh.read_bytes() == data
    # 3. an upload of bytes already stored restarts the grace period of their file
    _age(fresh, DAY)
    await assets.upload(rt, gm, room["id"], "again", "teal.png", data)
    assert fresh.stat().st_mtime > cutoff
    assert (await asset_gc.collect(rt))["deleted_files"] == 0 and fresh.is_file()


def _job(name: str, work: Callable[[Runtime], Awaitable[dict[str, Any]]]) -> jobs.Job:
    return jobs.Job(name, f"{name} (test)", work)


async def test_a_failing_job_is_recorded_and_the_scheduler_goes_on(make_rt: MakeRuntime,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    async def on_fire(_rt: Runtime) -> dict[str, Any]:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setitem(jobs.JOBS, "sessions", _job("sessions", on_fire))
    failed_before = m.RUNS.labels("sessions", "failed")._value.get()
    rt = await make_rt(maintenance_lease_seconds=1, maintenance_sessions_schedule="1s",
                       maintenance_event_history_schedule="1s", maintenance_optimize_schedule="off",
                       maintenance_assets_schedule="off", maintenance_warm_catalog_schedule="off")
    scheduler.start(rt)

    async def enough() -> bool:
        failed = [r for r in await _runs(rt, "sessions") if r["outcome"] == "failed"]
        ok = [r for r in await _runs(rt, "event_history") if r["outcome"] == "ok"]
        return len(failed) >= 2 and len(ok) >= 2 and ok[-1]["started_at"] > failed[0]["finished_at"]

    await eventually(enough, within=30, what="failed sessions runs, and event_history runs after them")
    failed = next(r for r in await _runs(rt, "sessions") if r["outcome"] == "failed")
    assert failed["error"] == "RuntimeError: the disk is on fire" and failed["trigger"] == "schedule"
    assert failed["slot"] is not None and failed["instance_id"] == rt.settings.instance_id
    assert rt.maintenance is not None and rt.maintenance.loop is not None and not rt.maintenance.loop.done()
    assert m.RUNS.labels("sessions", "failed")._value.get() >= failed_before + 2
    overview = await status.status(rt, 5)
    sessions_job = next(j for j in overview["jobs"] if j["name"] == "sessions")
    assert sessions_job["last_run"]["outcome"] in ("failed", "running") and sessions_job["last_success"] is None
    assert overview["lease"]["holder"] == rt.settings.instance_id and overview["lease"]["held_here"] is True


async def _slow(started: asyncio.Event, stopped: asyncio.Event) -> Callable[[Runtime], Awaitable[dict[str, Any]]]:
    async def work(_rt: Runtime) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()
        return {}

    return work


async def test_a_stop_interrupts_the_running_job_and_records_it(make_rt: MakeRuntime,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    started, stopped = asyncio.Event(), asyncio.Event()
    monkeypatch.setitem(jobs.JOBS, "warm_catalog", _job("warm_catalog", await _slow(started, stopped)))
    rt = await make_rt(maintenance_warm_catalog_schedule="start", maintenance_optimize_schedule="off",
                       maintenance_event_history_schedule="off", maintenance_sessions_schedule="off",
                       maintenance_assets_schedule="off")
    scheduler.start(rt)
    await asyncio.wait_for(started.wait(), 30)
    assert [r["outcome"] for r in await _runs(rt, "warm_catalog")] == ["running"]
    await scheduler.stop(rt)
    assert stopped.is_set()
    [run] = await _runs(rt, "warm_catalog")
    assert run["outcome"] == "abandoned" and run["error"] == runner.INTERRUPTED and run["trigger"] == "start"
    assert rt.maintenance is not None and not rt.maintenance.lease.held  # given up


async def test_a_run_declared_dead_elsewhere_stops_itself(make_rt: MakeRuntime,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    started, stopped = asyncio.Event(), asyncio.Event()
    monkeypatch.setitem(jobs.JOBS, "optimize", _job("optimize", await _slow(started, stopped)))
    rt = await make_rt(maintenance_lease_seconds=1)
    run = await status.start_on_demand(rt, "optimize")
    assert run["outcome"] == "running" and run["trigger"] == "api"
    await asyncio.wait_for(started.wait(), 30)
    with pytest.raises(Exception, match="already running") as busy:
        await status.start_on_demand(rt, "optimize")
    assert getattr(busy.value, "code", None) == "maintenance_running"
    async with rt.db.write() as conn:  # another process saw its heartbeat stop, and marked it so
        await conn.execute(sa.update(maintenance_runs).where(maintenance_runs.c.id == run["id"])
                           .values(outcome="abandoned", error=runs.ABANDONED_ERROR))
    await asyncio.wait_for(stopped.wait(), 30)  # the next heartbeat finds out and stops the job
    [row] = await _runs(rt, "optimize")
    assert row["outcome"] == "abandoned" and row["error"] == runs.ABANDONED_ERROR  # not overwritten
    await wait_until(lambda: not rt.background, what="the background run to end")


async def test_warming_fills_the_cache_with_the_hot_catalog_pages(make_rt: MakeRuntime) -> None:
    rt = await make_rt()
    await catalog_seed.seed(rt)
    done = await runner.run_now(rt, "warm_catalog", trigger="api")
    assert done is not None and done["outcome"] == "ok"
    assert done["summary"]["pages"] == len(jobs.HOT_PAGES) and done["summary"]["systems"] > 0
    assert done["summary"]["loaded_from_database"] == len(jobs.HOT_PAGES) + done["summary"]["systems"]
    loads = jobs._loads(rt)
    await systems.search(rt, category=None, complexity=None, text=None, page=1, limit=6)  # the lobby's first page
    assert jobs._loads(rt) == loads  # served from the cache
    again = await runner.run_now(rt, "warm_catalog", trigger="api")
    assert again is not None and again["summary"]["loaded_from_database"] == 0

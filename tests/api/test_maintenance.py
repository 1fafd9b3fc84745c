"""Maintenance as an operator sees it, on an embedded server (SQLite) with short schedules: the
jobs run by themselves and are recorded at `GET /api/admin/maintenance`, in /metrics and in the
logs; an admin runs one now over HTTP or from the CLI; nobody else may."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.support.accounts import make_admin
from tests.support.client import Api, Player
from tests.support.metrics import sample
from tests.support.server import ServerProcess
from tests.support.waiting import eventually

SCHEDULES = {"optimize": "start", "event_history": "2s", "sessions": "1s", "assets": "off", "warm_catalog": "start"}


@pytest.fixture(scope="module")
def maint_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"TABLEFORGE_DATA_DIR": str(tmp_path_factory.mktemp("maintenance")),
           "TABLEFORGE_MAINTENANCE_START_DELAY": "0", "TABLEFORGE_MAINTENANCE_LEASE_SECONDS": "1",
           **{f"TABLEFORGE_MAINTENANCE_{job.upper()}_SCHEDULE": value for job, value in SCHEDULES.items()}}
    proc = ServerProcess(free_port(), env, name="maintenance")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
async def maint_api(maint_server: ServerProcess) -> AsyncIterator[Api]:
    async with Api(maint_server.base_url) as client:
        yield client


@pytest.fixture(scope="module")
async def admin(maint_api: Api, maint_server: ServerProcess) -> Player:
    return await make_admin(maint_api, maint_server.env)


async def _overview(api: Api, admin: Player, runs: int = 10) -> dict[str, Any]:
    r = await api.http.get("/api/admin/maintenance", params={"runs": runs}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()  # type: ignore[no-any-return]


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def _job(overview: dict[str, Any], name: str) -> dict[str, Any]:
    return next(j for j in overview["jobs"] if j["name"] == name)


async def test_jobs_run_on_schedule_and_are_shown_to_admins(maint_api: Api, admin: Player,
                                                            maint_server: ServerProcess) -> None:
    async def sessions_ran_thrice() -> bool:
        recent = _job(await _overview(maint_api, admin), "sessions")["recent"]
        return len([r for r in recent if r["outcome"] == "ok" and r["trigger"] == "schedule"]) >= 3

    await eventually(sessions_ran_thrice, within=60, what="three scheduled sessions runs")
    overview = await _overview(maint_api, admin)
    assert overview["lease"]["backend"] == "process" and overview["lease"]["held_here"] is True
    assert overview["lease"]["holder"] == overview["instance_id"] and overview["scheduler_enabled"] is True
    assert [j["name"] for j in overview["jobs"]] == list(SCHEDULES)
    assert {j["name"]: j["schedule"] for j in overview["jobs"]} == SCHEDULES
    sessions = _job(overview, "sessions")
    assert sessions["every_seconds"] == 1.0 and sessions["enabled"] is True and sessions["next_due"] is not None
    scheduled = [r for r in sessions["recent"] if r["trigger"] == "schedule"]
    # one run per slot, never two at once: each starts after the one before ended, in its own second
    slots = [r["slot"] for r in scheduled]
    assert len(set(slots)) == len(slots)
    for newer, older in itertools.pairwise(scheduled):
        assert _at(newer["started_at"]) >= _at(older["finished_at"]) and newer["id"] > older["id"]
    run = scheduled[0]
    assert run["instance_id"] == overview["instance_id"] and run["error"] is None
    # the recorded duration is the run's own span, not a number made up apart from it
    span = (_at(run["finished_at"]) - _at(run["started_at"])).total_seconds()
    assert abs(run["duration_seconds"] - span) < 1e-5
    assert set(run["summary"]) >= {"sessions_expired_deleted", "sessions_revoked_deleted", "invites_deleted"}
    # the at-start jobs ran once, at the start
    for name in ("optimize", "warm_catalog"):
        job = _job(overview, name)
        assert [r["trigger"] for r in job["recent"]] == ["start"] and job["last_success"] is not None
        assert job["next_due"] is None and job["every_seconds"] is None
    assert _job(overview, "warm_catalog")["last_success"]["summary"]["systems"] > 0  # the seeded catalog
    assert _job(overview, "optimize")["last_success"]["summary"]["backend"] == "sqlite"
    assets = _job(overview, "assets")  # off: it runs only when asked (the tests below do)
    assert assets["enabled"] is False and assets["next_due"] is None
    assert all(r["trigger"] in ("api", "cli") for r in assets["recent"])
    # metrics: counted, timed, and the last success as a timestamp
    http = maint_api.http
    assert await sample(http, "tableforge_maintenance_runs_total", job="sessions", outcome="ok") >= 3
    assert await sample(http, "tableforge_maintenance_runs_total", job="assets", outcome="failed") == 0
    assert await sample(http, "tableforge_maintenance_duration_seconds_count", job="sessions") >= 3
    last = await sample(http, "tableforge_maintenance_last_success_timestamp_seconds", job="warm_catalog")
    assert last > 1.7e9
    assert await sample(http, "tableforge_maintenance_lease_held") == 1
    # structured logs: one line per run with the job, the outcome and what it did
    lines = [json.loads(line) for line in maint_server.log_path.read_text().splitlines() if line.startswith("{")]
    finished = [e for e in lines if e.get("event") == "maintenance.finished" and e.get("job") == "sessions"]
    assert finished and finished[0]["outcome"] == "ok" and "sessions_expired_deleted" in finished[0]["summary"]
    recorded = {r["id"]: r for r in sessions["recent"]}
    logged = [e for e in finished if e["run_id"] in recorded]
    assert logged and all(e["instance"] == overview["instance_id"] for e in logged)
    # the log line and the record tell the same duration
    assert all(abs(e["duration_ms"] - recorded[e["run_id"]]["duration_seconds"] * 1000) < 1 for e in logged)


async def test_an_admin_runs_a_job_now(maint_api: Api, admin: Player) -> None:
    r = await maint_api.http.post("/api/admin/maintenance/assets/run", headers=admin.headers)
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["job"] == "assets" and run["trigger"] == "api" and run["slot"] is None
    assert run["outcome"] in ("running", "ok")

    async def finished() -> bool:
        recent = _job(await _overview(maint_api, admin), "assets")["recent"]
        return any(r["id"] == run["id"] and r["outcome"] == "ok" for r in recent)

    await eventually(finished, within=30, what="the assets run to finish")
    done = next(r for r in _job(await _overview(maint_api, admin), "assets")["recent"] if r["id"] == run["id"])
    assert done["summary"]["deleted_files"] == 0  # nothing to collect
    assert _at(done["finished_at"]) >= _at(done["started_at"])
    bad = await maint_api.http.post("/api/admin/maintenance/vacuum-everything/run", headers=admin.headers)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "job"


async def test_only_admins_see_or_run_maintenance(maint_api: Api) -> None:
    player = await maint_api.register("pl")
    for method, path in (("GET", "/api/admin/maintenance"), ("POST", "/api/admin/maintenance/optimize/run")):
        anonymous = await maint_api.http.request(method, path)
        assert anonymous.status_code == 401
        refused = await maint_api.http.request(method, path, headers=player.headers)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_admin"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tableforge", "maintenance", *args],
                          env={**os.environ, **env, "TABLEFORGE_LOG_LEVEL": "WARNING"}, capture_output=True, text=True,
                          timeout=60, input="")


async def test_the_cli_lists_the_jobs_and_runs_one_beside_the_server(maint_api: Api, admin: Player,
                                                                      maint_server: ServerProcess) -> None:
    # assets: not scheduled on this server (a scheduled run may be in progress, and the CLI would find
    # the job running and refuse)
    ran = _cli(maint_server.env, "run", "assets", "--json")
    assert ran.returncode == 0, ran.stderr
    run = json.loads(ran.stdout)
    assert run["job"] == "assets" and run["outcome"] == "ok" and run["trigger"] == "cli"
    assert run["instance_id"].startswith("cli:") and run["summary"]["grace_seconds"] == 6 * 3600
    recent = _job(await _overview(maint_api, admin, runs=50), "assets")["recent"]
    assert run["id"] in [r["id"] for r in recent if r["trigger"] == "cli"]  # the server shows it too
    listed = _cli(maint_server.env, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert [j["name"] for j in report["jobs"]] == list(SCHEDULES)
    assert _job(report, "assets")["last_run"]["id"] == run["id"]
    unknown = _cli(maint_server.env, "run", "defrag")
    assert unknown.returncode == 2 and "no job named 'defrag'" in unknown.stderr and "warm_catalog" in unknown.stderr
    warm = _cli(maint_server.env, "run", "warm_catalog")
    assert warm.returncode == 2 and "POST /api/admin/maintenance/warm_catalog/run" in warm.stderr


def test_a_bad_schedule_is_refused_at_start_with_the_setting_named(tmp_path: Path) -> None:
    env = {"TABLEFORGE_DATA_DIR": str(tmp_path), "TABLEFORGE_MAINTENANCE_OPTIMIZE_SCHEDULE": "nightly"}
    served = subprocess.run([sys.executable, "-m", "tableforge", "serve", "--port", str(free_port())],
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=60, input="")
    assert served.returncode == 2
    assert "TABLEFORGE_MAINTENANCE_OPTIMIZE_SCHEDULE" in served.stderr
    assert "'nightly' is not a duration" in served.stderr

"""What `GET /api/admin/maintenance` and `tableforge maintenance list` show: each job's schedule,
its running and recent runs, when it is next due, and who holds the lease. Any instance answers
the same runs (they are in the database); `next_due` is as this instance would schedule it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from tableforge.db import maintenance_runs as runs
from tableforge.domain import wire
from tableforge.domain.errors import Conflict
from tableforge.domain.maintenance import JOB_NAMES, next_due, slot_of
from tableforge.services.maintenance import runner
from tableforge.services.maintenance.jobs import JOBS
from tableforge.services.maintenance.lease import LeaseView
from tableforge.services.runtime import Runtime


def shape(run: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run as the API shows it (ISO times)."""
    if run is None:
        return None
    return {"id": int(run["id"]), "job": run["job"], "trigger": run["trigger"], "instance_id": run["instance_id"],
            "slot": wire.iso(run["slot"]), "started_at": wire.iso(run["started_at"]),
            "heartbeat_at": wire.iso(run["heartbeat_at"]), "finished_at": wire.iso(run["finished_at"]),
            "duration_seconds": run["duration_seconds"], "outcome": run["outcome"], "summary": run["summary"],
            "error": run["error"]}


def _iso(epoch: float | None) -> str | None:
    return wire.iso(datetime.fromtimestamp(epoch, UTC)) if epoch is not None else None


async def status(rt: Runtime, recent: int = 10) -> dict[str, Any]:
    settings = rt.settings
    state = rt.maintenance
    view = await state.lease.view() if state is not None else LeaseView("none", None, None)
    held_here = state is not None and state.lease.held and view.holder == settings.instance_id
    records = await runs.recent(rt.db, JOB_NAMES, recent)
    now = time.time()
    not_before = state.started_at + settings.maintenance_start_delay if state is not None and held_here else 0.0
    jobs = []
    for name, schedule in settings.maintenance_schedules.items():
        due: float | None = None
        if state is not None and held_here and schedule.at_start and name not in state.done_at_start:
            due = now
        elif schedule.every is not None:
            due = state.next_due.get(name) if state is not None and held_here else None
            if due is None:
                due = next_due(schedule.every, now, await runs.slot_runs(rt.db, name, slot_of(now, schedule.every)),
                               not_before)
        rec = records[name]
        jobs.append({
            "name": name, "description": JOBS[name].description, "schedule": schedule.describe(),
            "enabled": schedule.enabled, "every_seconds": schedule.every, "at_start": schedule.at_start,
            "next_due": _iso(max(due, now)) if due is not None else None,
            "running": shape(rec["running"]), "last_run": shape(rec["runs"][0]) if rec["runs"] else None,
            "last_success": shape(rec["last_success"]), "recent": [shape(r) for r in rec["runs"]]})
    return {
        "instance_id": settings.instance_id,
        "scheduler_enabled": settings.maintenance_enabled,
        "lease": {"backend": view.backend, "holder": view.holder, "expires_in": view.expires_in,
                  "held_here": held_here, "seconds": settings.maintenance_lease_seconds, "error": view.error},
        "settings": {"start_delay_seconds": settings.maintenance_start_delay,
                     "keep_runs": settings.maintenance_keep_runs,
                     "asset_grace_seconds": settings.maintenance_asset_grace,
                     "keep_expired_seconds": settings.maintenance_keep_expired},
        "jobs": jobs,
    }


async def start_on_demand(rt: Runtime, job: str, trigger: str = "api") -> dict[str, Any]:
    """Begin a run of `job` now, on this instance, and let it work in the background; the run as
    begun. Conflict `maintenance_running` when it is already running anywhere."""
    run = await runner.begin(rt, job, trigger=trigger, slot=None)
    if run is None:
        running = (await runs.recent(rt.db, (job,), 1))[job]["running"]
        raise Conflict(f"the {job} job is already running", code="maintenance_running",
                       details={"running": shape(running)})
    rt.spawn(runner.execute(rt, run))
    return shape(run) or {}

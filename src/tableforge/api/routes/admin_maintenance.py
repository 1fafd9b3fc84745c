"""Admin routes of the maintenance jobs (*extension*): what is scheduled, what ran, run one now.
Thin: the work is in `services/maintenance`. Live state, so `Cache-Control: no-store`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from tableforge.api import schemas as S
from tableforge.api.deps import AdminDep, RuntimeDep
from tableforge.api.responses import JSON
from tableforge.domain.maintenance import JobName
from tableforge.services.maintenance import status

router = APIRouter(prefix="/api/admin/maintenance")
_NO_STORE = {"Cache-Control": "no-store"}


class MaintenanceRunOut(S.Out):
    """One run: `outcome` is running, ok, failed or abandoned (its process died or was stopped)."""

    id: int
    job: str
    trigger: str  # schedule, start, api, cli
    instance_id: str
    slot: str | None
    started_at: str
    heartbeat_at: str | None
    finished_at: str | None
    duration_seconds: float | None
    outcome: str
    summary: dict[str, Any] | None
    error: str | None


class MaintenanceJobOut(S.Out):
    name: str
    description: str
    schedule: str  # as in the setting: off, start, 6h, start,6h
    enabled: bool
    every_seconds: float | None
    at_start: bool
    next_due: str | None
    running: MaintenanceRunOut | None
    last_run: MaintenanceRunOut | None
    last_success: MaintenanceRunOut | None
    recent: list[MaintenanceRunOut]


class MaintenanceLeaseOut(S.Out):
    backend: str  # process (embedded) or redis
    holder: str | None
    expires_in: float | None
    held_here: bool
    seconds: float
    error: str | None


class MaintenanceOut(S.Out):
    instance_id: str
    scheduler_enabled: bool
    lease: MaintenanceLeaseOut
    settings: dict[str, Any]
    jobs: list[MaintenanceJobOut]


@router.get("", responses=S.responses(MaintenanceOut))
async def overview(rt: RuntimeDep, _admin: AdminDep,
                   runs: Annotated[int, Query(ge=1, le=100, description="recent runs shown per job")] = 10) -> JSON:
    """Every job's schedule, running and recent runs and next due time, and the lease holder."""
    return JSON(await status.status(rt, runs), headers=_NO_STORE)


@router.post("/{job}/run", status_code=202, responses=S.responses(MaintenanceRunOut, 202))
async def run(job: Annotated[JobName, Path(description="the job to run now")], rt: RuntimeDep,
              _admin: AdminDep) -> JSON:
    """Start a run of the job now on this instance, whatever its schedule (disabled ones too); it
    works in the background: 202 with the run, then `GET /api/admin/maintenance` shows how it ended.
    409 `maintenance_running` while the job runs anywhere."""
    return JSON(await status.start_on_demand(rt, job), status_code=202, headers=_NO_STORE)

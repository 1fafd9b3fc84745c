"""One run of a maintenance job: recorded in `maintenance_runs` (the row is also the cluster-wide
"running" lock), kept alive by a heartbeat, timed, logged and counted. A failing job is recorded as
failed; the runner itself never raises for one, so a bad job cannot stop the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

import structlog

from tableforge.db import maintenance_runs as runs
from tableforge.domain.errors import AppError
from tableforge.observability import maintenance_metrics as m
from tableforge.services.maintenance.jobs import JOBS, JobFailed
from tableforge.services.runtime import Runtime

log = structlog.get_logger("tableforge.maintenance")
FINISH_TIMEOUT = 10.0  # recording the end of a run interrupted by a stop: at most this long
INTERRUPTED = "interrupted: the instance stopped, or lost the maintenance lease, while it ran"


def stale_after(rt: Runtime) -> float:
    """A running row whose heartbeat is older than this belongs to a dead process (the lease time:
    the same bound on how long a dead holder blocks the others)."""
    return rt.settings.maintenance_lease_seconds


async def begin(rt: Runtime, job: str, *, trigger: str, slot: float | None, instance_id: str | None = None
                ) -> dict[str, Any] | None:
    """Record the start of a run; None when the job is already running (anywhere) or the slot is
    already taken. Running rows of dead processes are marked abandoned first."""
    for gone in await runs.abandon_stale(rt.db, stale_after(rt), job):
        m.RUNS.labels(gone, "abandoned").inc()
        log.warning("maintenance.abandoned", job=gone, reason=runs.ABANDONED_ERROR)
    return await runs.begin(rt.db, job=job, trigger=trigger, slot=slot,
                            instance_id=instance_id or rt.settings.instance_id)


async def execute(rt: Runtime, run: dict[str, Any]) -> dict[str, Any]:
    """Run the job of a begun run to its end and record how it ended; returns the run."""
    job = run["job"]
    bound = log.bind(job=job, run_id=run["id"], trigger=run["trigger"])
    bound.info("maintenance.started", slot=run["slot"].isoformat() if run["slot"] else None)
    work = asyncio.ensure_future(JOBS[job].run(rt))
    beat = asyncio.ensure_future(_heartbeat(rt, run, work))
    outcome, summary, error = "failed", None, None
    try:
        summary = await work
        outcome = "ok"
    except asyncio.CancelledError:
        outcome, error = "abandoned", INTERRUPTED
        work.cancel()
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # this task is being stopped; else the heartbeat stopped the job: record it, carry on
    except JobFailed as exc:
        summary, error = exc.summary, str(exc)
    except AppError as exc:  # e.g. the database unavailable: a clear code, no traceback needed
        error = f"{exc.code}: {exc.message}"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        bound.exception("maintenance.crashed")
    finally:
        beat.cancel()
        # The run's span as recorded (from its row's started_at), so duration and timestamps agree.
        ended = datetime.now(UTC)
        duration = (ended - run["started_at"]).total_seconds()
        # Shielded and bounded: a stop that interrupts the run still gets its end recorded.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(_record(rt, run, outcome, ended, duration, summary, error, bound)),
                                   FINISH_TIMEOUT)
    return run


async def _record(rt: Runtime, run: dict[str, Any], outcome: str, ended: datetime, duration: float,
                  summary: dict[str, Any] | None, error: str | None, bound: Any) -> None:
    """Count, log, then store how the run ended (counted and logged even if the database is gone)."""
    job = run["job"]
    m.RUNS.labels(job, outcome).inc()
    m.DURATION.labels(job).observe(duration)
    if outcome == "ok":
        m.LAST_SUCCESS.labels(job).set(ended.timestamp())
    fields = {"outcome": outcome, "duration_ms": round(duration * 1000, 1), "summary": summary}
    if outcome == "ok":
        bound.info("maintenance.finished", **fields)
    else:
        bound.warning("maintenance.finished", error=error, **fields)
    try:
        recorded = await runs.finish(rt.db, run, outcome=outcome, ended=ended, summary=summary, error=error,
                                     keep=rt.settings.maintenance_keep_runs)
    except Exception as exc:  # its row stays `running` until it is found abandoned
        bound.warning("maintenance.record_failed", error=repr(exc))
        return
    if not recorded:
        bound.warning("maintenance.record_refused", reason="the run had been marked abandoned meanwhile")


async def _heartbeat(rt: Runtime, run: dict[str, Any], work: asyncio.Future[Any]) -> None:
    """Refresh the run's heartbeat every third of the lease time. If the row was marked abandoned
    (we looked dead to someone) or the heartbeat cannot be written for longer than the lease time
    (someone may be about to), the job is stopped: never two runs of one job at once."""
    every = rt.settings.maintenance_lease_seconds / 3
    last_ok = time.monotonic()
    while not work.done():
        await asyncio.sleep(every)
        try:
            if not await runs.heartbeat(rt.db, run["id"]):
                log.warning("maintenance.heartbeat_refused", job=run["job"], run_id=run["id"])
                work.cancel()
                return
            last_ok = time.monotonic()
        except Exception as exc:
            if time.monotonic() - last_ok > stale_after(rt) - every:
                log.warning("maintenance.heartbeat_lost", job=run["job"], run_id=run["id"], error=repr(exc))
                work.cancel()
                return


async def run_now(rt: Runtime, job: str, *, trigger: str, slot: float | None = None,
                  instance_id: str | None = None) -> dict[str, Any] | None:
    """Begin and execute a run in one go (the scheduler and the CLI); None if it could not begin."""
    run = await begin(rt, job, trigger=trigger, slot=slot, instance_id=instance_id)
    if run is None:
        return None
    return await execute(rt, run)

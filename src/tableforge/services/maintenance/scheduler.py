"""The maintenance scheduler: a loop in every instance; the one holding the lease runs the jobs.

Every third of the lease time each instance tries to take (or renew) the lease. The holder starts
the jobs that are due, one at a time: first the at-start ones it has not run since it started, then
the periodic job whose slot is most overdue (domain/maintenance.py). The runs table decides the
rest: a slot already done (by an earlier holder) is not run again, and a job running elsewhere (an
admin's "run now", a CLI run) is not started twice. When the holder loses the lease (Redis out of
reach for the lease time, or it stops), it interrupts its run before another can have the lease.

Every instance also refreshes `tableforge_maintenance_last_success_timestamp_seconds` from the runs
table, so each one's /metrics shows the cluster's last successes, whoever ran them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from tableforge.db import maintenance_runs as runs
from tableforge.domain.maintenance import JOB_NAMES, Schedule, next_due, slot_of
from tableforge.observability import maintenance_metrics as m
from tableforge.services.maintenance import runner
from tableforge.services.maintenance.state import MaintenanceState
from tableforge.services.runtime import Runtime

log = structlog.get_logger("tableforge.maintenance")
REFRESH_EVERY = 30.0  # seconds between gauge refreshes (and, on the holder, sweeps of dead runs)
RELEASE_TIMEOUT = 2.0


def start(rt: Runtime) -> None:
    """Start this instance's scheduler loop (wiring/lifecycle.py, at the end of start-up)."""
    state = rt.maintenance
    if state is None or state.loop is not None:
        return
    state.started_at = time.time()
    state.loop = asyncio.ensure_future(_loop(rt, state))


async def stop(rt: Runtime) -> None:
    """Stop the loop: the run in progress is interrupted (and recorded so), the lease given up."""
    state = rt.maintenance
    if state is None or state.loop is None:
        return
    loop, state.loop = state.loop, None
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop


async def _loop(rt: Runtime, state: MaintenanceState) -> None:
    settings = rt.settings
    schedules = settings.maintenance_schedules
    tick = settings.maintenance_lease_seconds / 3
    wake = asyncio.Event()
    holding, lease_failing, refreshed = False, False, 0.0
    try:
        while True:
            now_holding = False
            if settings.maintenance_enabled:
                try:
                    now_holding = await state.lease.hold()
                    if lease_failing:
                        log.info("maintenance.lease_backend_back")
                    lease_failing = False
                except Exception as exc:
                    now_holding = state.lease.held  # still within the time of the last renewal
                    if not lease_failing:
                        log.warning("maintenance.lease_backend_error", error=repr(exc), still_held=now_holding)
                    lease_failing = True
            if now_holding != holding:
                await _holding_changed(rt, state, now_holding)
            holding = now_holding
            now = time.time()
            if now - refreshed >= REFRESH_EVERY:
                refreshed = now
                await _refresh(rt, sweep=holding)
            if holding and (state.current is None or state.current.done()):
                await _start_next(rt, state, schedules, wake)
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), _pause(state, holding, tick))
    finally:
        await _interrupt(state)
        m.LEASE_HELD.set(0)
        if settings.maintenance_enabled:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(state.lease.release(), RELEASE_TIMEOUT)


async def _holding_changed(rt: Runtime, state: MaintenanceState, holding: bool) -> None:
    m.LEASE_HELD.set(1 if holding else 0)
    state.next_due.clear()  # a new holder reads the slots from the runs table
    if holding:
        log.info("maintenance.lease_acquired", backend=state.lease.backend)
        await _refresh(rt, sweep=True)
    else:
        log.warning("maintenance.lease_lost", backend=state.lease.backend, running=state.current_job)
        await _interrupt(state)


def _pause(state: MaintenanceState, holding: bool, tick: float) -> float:
    """Until the next renewal; sooner when a job is due before it, or when the lease would stop
    being trusted before it (renewals failing): the run in progress is then interrupted in time."""
    if not holding:
        return tick
    pause = min(tick, state.lease.valid_until - time.monotonic())
    if state.next_due and (state.current is None or state.current.done()):
        pause = min(pause, min(state.next_due.values()) - time.time())
    return max(0.05, pause)


async def _start_next(rt: Runtime, state: MaintenanceState, schedules: dict[str, Schedule],
                      wake: asyncio.Event) -> None:
    try:
        picked = await _pick(rt, state, schedules, time.time())
    except Exception as exc:  # the database is down: try again at the next tick
        log.warning("maintenance.schedule_read_failed", error=repr(exc))
        return
    if picked is None:
        return
    job, slot, trigger = picked
    state.current_job = job
    state.current = asyncio.ensure_future(_run(rt, state, job, slot, trigger, wake))


async def _pick(rt: Runtime, state: MaintenanceState, schedules: dict[str, Schedule], now: float
                ) -> tuple[str, float | None, str] | None:
    """(job, slot, trigger) of the run to start now, or None."""
    for job, schedule in schedules.items():
        if schedule.at_start and job not in state.done_at_start:
            return job, None, "start"
    not_before = state.started_at + rt.settings.maintenance_start_delay
    best: tuple[float, str] | None = None
    for job, schedule in schedules.items():
        if schedule.every is None:
            continue
        due = state.next_due.get(job)
        if due is None or due <= now:
            slot_runs = await runs.slot_runs(rt.db, job, slot_of(now, schedule.every))
            due = state.next_due[job] = next_due(schedule.every, now, slot_runs, not_before)
        if due <= now and (best is None or due < best[0]):
            best = (due, job)
    if best is None:
        return None
    every = schedules[best[1]].every
    assert every is not None
    return best[1], slot_of(now, every), "schedule"


async def _run(rt: Runtime, state: MaintenanceState, job: str, slot: float | None, trigger: str,
               wake: asyncio.Event) -> None:
    try:
        if trigger == "start":
            state.done_at_start.add(job)  # once per start, whatever the outcome
        run = await runner.run_now(rt, job, trigger=trigger, slot=slot)
        if run is None:
            log.info("maintenance.skipped", job=job, reason="running elsewhere, or this slot is done")
    except Exception as exc:  # begin() could not reach the database: the slot is tried again later
        log.warning("maintenance.begin_failed", job=job, error=repr(exc))
    finally:
        state.next_due.pop(job, None)
        state.current_job = None
        wake.set()


async def _interrupt(state: MaintenanceState) -> None:
    current = state.current
    if current is not None and not current.done():
        current.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await current
    state.current, state.current_job = None, None


async def _refresh(rt: Runtime, *, sweep: bool) -> None:
    """The last-success gauges from the runs table; on the holder, mark dead processes' runs abandoned."""
    try:
        if sweep:
            for job in await runs.abandon_stale(rt.db, runner.stale_after(rt)):
                if job in JOB_NAMES:  # a label from a fixed set only
                    m.RUNS.labels(job, "abandoned").inc()
                log.warning("maintenance.abandoned", job=job, reason=runs.ABANDONED_ERROR)
        for job, at in (await runs.last_successes(rt.db)).items():
            if job in JOB_NAMES:
                m.LAST_SUCCESS.labels(job).set(at)
    except Exception as exc:
        log.warning("maintenance.refresh_failed", error=repr(exc))

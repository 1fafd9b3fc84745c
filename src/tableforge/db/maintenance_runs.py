"""The record of maintenance job runs (`maintenance_runs`, migration 0004).

A run starts as a `running` row. The table's partial unique indexes are what make a job run at
most once at a time and a scheduled slot succeed at most once, across every instance and CLI
process: `begin` returns None when either is taken. The runner refreshes `heartbeat_at` while it
works; a `running` row whose heartbeat is older than the lease time belongs to a process that died
(`kill -9`, a lost machine) and is marked `abandoned` by whoever looks next, which frees the job.

Times are the application's clock (UTC); instances must keep their clocks in sync (NTP), as for
session expiry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tableforge.db.engine import Database
from tableforge.db.schema import maintenance_runs as runs
from tableforge.domain.maintenance import SlotRuns

ERROR_CHARS = 500
ABANDONED_ERROR = "the process running it stopped renewing its heartbeat (it died or lost the database)"


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def slot_time(slot: float) -> datetime:
    """A slot (epoch seconds) as stored: microsecond precision, so equal slots compare equal."""
    return datetime.fromtimestamp(round(slot, 6), UTC)


def _row(mapping: Any) -> dict[str, Any]:
    row = dict(mapping)
    for key in ("slot", "started_at", "heartbeat_at", "finished_at"):
        if row.get(key) is not None:
            row[key] = utc(row[key])
    return row


async def abandon_stale(db: Database, stale_after: float, job: str | None = None) -> list[str]:
    """Mark `running` rows whose heartbeat is older than `stale_after` seconds as abandoned; the
    jobs of the rows marked (so the caller can count them)."""
    now = datetime.now(UTC)
    cond = [runs.c.outcome == "running", runs.c.heartbeat_at < now - timedelta(seconds=stale_after)]
    if job is not None:
        cond.append(runs.c.job == job)
    async with db.write() as conn:
        marked = await conn.execute(sa.update(runs).where(*cond)
                                    .values(outcome="abandoned", finished_at=now, error=ABANDONED_ERROR)
                                    .returning(runs.c.job))
        return [str(j) for j in marked.scalars()]


async def begin(db: Database, *, job: str, trigger: str, instance_id: str, slot: float | None
                ) -> dict[str, Any] | None:
    """Insert the `running` row of a new run; None when the job is already running somewhere or
    the slot already has a running or successful run."""
    now = datetime.now(UTC)
    values = {"job": job, "trigger": trigger, "slot": slot_time(slot) if slot is not None else None,
              "instance_id": instance_id[:200], "started_at": now, "heartbeat_at": now, "outcome": "running"}
    try:
        async with db.write() as conn:
            run_id = (await conn.execute(sa.insert(runs).values(**values).returning(runs.c.id))).scalar_one()
    except IntegrityError:
        return None
    return {"id": int(run_id), **values, "finished_at": None, "duration_seconds": None, "summary": None,
            "error": None}


async def heartbeat(db: Database, run_id: int) -> bool:
    """Refresh a running run's heartbeat; False if it is no longer `running` (someone marked it
    abandoned: the caller must stop)."""
    async with db.write() as conn:
        done = await conn.execute(sa.update(runs).where(runs.c.id == run_id, runs.c.outcome == "running")
                                  .values(heartbeat_at=datetime.now(UTC)))
    return bool(done.rowcount == 1)


async def finish(db: Database, run: dict[str, Any], *, outcome: str, ended: datetime,
                 summary: dict[str, Any] | None, error: str | None, keep: int) -> bool:
    """Record how a run ended and drop the job's runs beyond the newest `keep`; False if the row
    was no longer `running` (it was marked abandoned meanwhile; the outcome is not recorded)."""
    values = {"outcome": outcome, "finished_at": ended,
              "duration_seconds": round((ended - run["started_at"]).total_seconds(), 6), "summary": summary,
              "error": error[:ERROR_CHARS] if error else None}
    run.update(values)  # the caller's copy says how it ended, even if the row cannot be written
    async with db.write() as conn:
        done = await conn.execute(sa.update(runs).where(runs.c.id == run["id"], runs.c.outcome == "running")
                                  .values(heartbeat_at=ended, **values))
        await prune(conn, run["job"], keep)
    return bool(done.rowcount == 1)


async def prune(conn: Any, job: str, keep: int) -> None:
    """Delete the job's finished runs older than its newest `keep` (the index on job, id finds the cut)."""
    cut = (sa.select(runs.c.id).where(runs.c.job == job).order_by(runs.c.id.desc())
           .offset(keep - 1).limit(1).scalar_subquery())
    await conn.execute(sa.delete(runs).where(runs.c.job == job, runs.c.outcome != "running", runs.c.id < cut))


async def slot_runs(db: Database, job: str, slot: float) -> SlotRuns:
    """What the runs table holds for one scheduled slot of a job."""
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(runs.c.outcome, runs.c.finished_at)
                                   .where(runs.c.job == job, runs.c.slot == slot_time(slot)))).all()
    done = any(o in ("running", "ok") for o, _ in rows)
    ends = [utc(f).timestamp() for o, f in rows if o in ("failed", "abandoned") and f is not None]
    return SlotRuns(done=done, failures=sum(1 for o, _ in rows if o in ("failed", "abandoned")),
                    last_failure_end=max(ends) if ends else None)


async def recent(db: Database, jobs: tuple[str, ...], limit: int) -> dict[str, dict[str, Any]]:
    """Per job: its newest `limit` runs (`runs`), the running one and the last success. Indexed
    statements (job, id; the partial index of running rows) on a table of at most `keep` rows per job."""
    out: dict[str, dict[str, Any]] = {}
    async with db.read() as conn:
        running = {str(r["job"]): _row(r) for r in (await conn.execute(
            sa.select(runs).where(runs.c.outcome == "running"))).mappings()}
        for job in jobs:
            newest = [_row(r) for r in (await conn.execute(
                sa.select(runs).where(runs.c.job == job).order_by(runs.c.id.desc()).limit(limit))).mappings()]
            success = (await conn.execute(
                sa.select(runs).where(runs.c.job == job, runs.c.outcome == "ok").order_by(runs.c.id.desc())
                .limit(1))).mappings().first()
            out[job] = {"runs": newest, "last_success": _row(success) if success else None,
                        "running": running.get(job)}
    return out


async def last_successes(db: Database) -> dict[str, float]:
    """When each job last finished successfully, on any instance (epoch seconds)."""
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(runs.c.job, sa.func.max(runs.c.finished_at))
                                   .where(runs.c.outcome == "ok").group_by(runs.c.job))).all()
    return {str(job): utc(at).timestamp() for job, at in rows if at is not None}

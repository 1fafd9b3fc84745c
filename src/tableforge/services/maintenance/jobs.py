"""The maintenance jobs: what each does, as a function of the runtime that returns a small JSON
summary of what it did (recorded with the run). A job that fails part-way raises `JobFailed` with
the summary so far; any other exception is a failure without one.

Every job is safe to run at any time, on any instance, as often as anyone likes (an admin's "run
now", two clusters sharing a database in tests): each step only removes what is provably dead or
recomputes statistics.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tableforge.db import housekeeping
from tableforge.domain.maintenance import JOB_NAMES
from tableforge.services import systems
from tableforge.services.maintenance import asset_gc
from tableforge.services.runtime import Runtime


class JobFailed(Exception):
    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    description: str
    run: Callable[[Runtime], Awaitable[dict[str, Any]]]


# --- optimize -------------------------------------------------------------------------------------

async def optimize(rt: Runtime) -> dict[str, Any]:
    """`tableforge db optimize` without the index advice, plus SQLite's free pages (db/housekeeping.py)."""
    summary = await housekeeping.optimize(rt.db)
    if summary["failed"]:
        raise JobFailed(f"{len(summary['failed'])} tables could not be analyzed or vacuumed", summary)
    return summary


# --- retention ------------------------------------------------------------------------------------

async def event_history(rt: Runtime) -> dict[str, Any]:
    """Each open room keeps its newest `TABLEFORGE_WS_HISTORY_SIZE` events; closed rooms none."""
    return await housekeeping.trim_event_history(rt.db, rt.settings.ws_history_size)


async def sessions(rt: Runtime) -> dict[str, Any]:
    """Sessions expired or revoked, and registration invites dead, for longer than
    `TABLEFORGE_MAINTENANCE_KEEP_EXPIRED`. (Socket tickets expire by themselves: a Redis expiry,
    or the bounded in-process store.)"""
    cutoff = datetime.now(UTC) - timedelta(seconds=rt.settings.maintenance_keep_expired)
    out: dict[str, Any] = dict(await housekeeping.delete_dead_sessions(rt.db, cutoff))
    out["invites_deleted"] = await housekeeping.delete_dead_invites(rt.db, cutoff)
    out["dead_before"] = cutoff.isoformat().replace("+00:00", "Z")
    return out


# --- the catalog ----------------------------------------------------------------------------------

# (page, limit) of the unfiltered catalog that clients ask for first: the web lobby's first pages
# (6 a page), its category list (100), and the API's default page (20).
HOT_PAGES = ((1, 6), (2, 6), (3, 6), (1, 100), (1, 20))


async def warm_catalog(rt: Runtime) -> dict[str, Any]:
    """Load the hot catalog pages, and the systems on the default first page, through the cache
    (`get_or_load`): after a start, the first wave of visitors finds them cached instead of all
    reading the database at once. In scale-out mode this fills the shared (Redis) tier, from which
    every other instance's first read takes them."""
    before = _loads(rt)
    first: dict[str, Any] = {}
    for page, limit in HOT_PAGES:
        result = await systems.search(rt, category=None, complexity=None, text=None, page=page, limit=limit)
        if (page, limit) == (1, 20):
            first = result
    ids = [str(s["id"]) for s in first.get("systems", [])]
    for system_id in ids:
        await systems.get(rt, system_id, None)
    return {"pages": len(HOT_PAGES), "systems": len(ids), "loaded_from_database": _loads(rt) - before}


def _loads(rt: Runtime) -> int:
    """Cache loads of catalog pages and systems so far on this instance (concurrent traffic counts too)."""
    kinds = rt.cache.stats().get("kinds", {})
    return int(sum(kinds.get(kind, {}).get("loads", 0) for kind in ("query", "system")))


JOBS: dict[str, Job] = {job.name: job for job in (
    Job("optimize", "ANALYZE, and VACUUM the tables with many dead rows (PostgreSQL); ANALYZE, PRAGMA optimize "
                    "and give free pages back (SQLite)", optimize),
    Job("event_history", "trim each room's event history to TABLEFORGE_WS_HISTORY_SIZE; drop closed rooms' history",
        event_history),
    Job("sessions", "delete sessions expired or revoked, and registration invites dead, for longer than "
                    "TABLEFORGE_MAINTENANCE_KEEP_EXPIRED", sessions),
    Job("assets", "delete asset files no asset row names any more, once older than TABLEFORGE_MAINTENANCE_ASSET_GRACE",
        asset_gc.collect),
    Job("warm_catalog", "load the hot catalog pages into the cache", warm_catalog),
)}
assert tuple(JOBS) == JOB_NAMES, "every job name of domain/maintenance.py has a job, in the same order"

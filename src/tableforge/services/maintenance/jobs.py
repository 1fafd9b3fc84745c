"""The maintenance jobs: what each does, as a function of the runtime that returns a small JSON
summary of what it did (recorded with the run). A job that fails part-way raises `JobFailed` with
the summary so far; any other exception is a failure without one.

Every job is safe to run at any time, on any instance, as often as anyone likes (an admin's "run
now", two clusters sharing a database in tests): each step only removes what is provably dead or
recomputes statistics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tableforge.db import housekeeping, reports
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

SQLITE_VACUUM_BATCH_PAGES = 1024  # pages given back per step of an incremental vacuum (4 MiB at 4 KiB)
SQLITE_FULL_VACUUM_MAX_BYTES = 64 * 1024 * 1024  # rebuild a database of at most this size in one go
SQLITE_FREE_RATIO = 0.2  # ... when at least this share of it is free pages
SQLITE_FREE_MIN_BYTES = 1024 * 1024


async def optimize(rt: Runtime) -> dict[str, Any]:
    """`tableforge db optimize` without the index advice: ANALYZE, and VACUUM (ANALYZE) the tables
    over the dead-row ratio (PostgreSQL); ANALYZE and PRAGMA optimize, then free pages given back
    to the file system (SQLite)."""
    done = await reports.vacuum_analyze(rt.db)
    actions = done["actions"]
    failed = [{"table": a["table"], "error": a.get("error")} for a in actions if a["status"] != "ok"]
    summary: dict[str, Any] = {
        "backend": done["backend"],
        "analyzed": sum(1 for a in actions if a["status"] == "ok"),
        "vacuumed": [a["table"] for a in actions if a["action"] == "vacuum_analyze" and a["status"] == "ok"],
        "failed": failed}
    if not rt.db.is_postgres:
        summary["space"] = await _sqlite_space(rt)
    if failed:
        raise JobFailed(f"{len(failed)} of {len(actions)} tables could not be analyzed or vacuumed", summary)
    return summary


async def _sqlite_space(rt: Runtime) -> dict[str, Any]:
    """Give free pages back. Incremental databases (every new one): a batch of pages per step,
    yielding in between. Older ones: rebuilt once as incremental when small (well under a second);
    a large one is left alone with advice, since the rebuild would hold every write for its length."""
    db = rt.db
    space = await housekeeping.sqlite_space(db)
    page = space["page_size"] or 4096
    before = space["freelist_count"]
    out: dict[str, Any] = {"file_bytes": space["page_count"] * page, "free_bytes": before * page,
                           "auto_vacuum": {0: "none", 1: "full", 2: "incremental"}.get(space["auto_vacuum"], "?")}
    if space["auto_vacuum"] == 2:
        left = before
        while left > 0:
            await housekeeping.sqlite_incremental_vacuum(db, SQLITE_VACUUM_BATCH_PAGES)
            now_free = (await housekeeping.sqlite_space(db))["freelist_count"]
            if now_free >= left:
                break  # nothing more came free (another writer refilled it): stop, never spin
            left = now_free
            await asyncio.sleep(0)
        out["freed_bytes"] = (before - left) * page
    elif space["auto_vacuum"] == 0 and out["free_bytes"] >= SQLITE_FREE_MIN_BYTES \
            and before >= SQLITE_FREE_RATIO * max(space["page_count"], 1):
        if out["file_bytes"] <= SQLITE_FULL_VACUUM_MAX_BYTES:
            await housekeeping.sqlite_vacuum_into_incremental(db)
            after = await housekeeping.sqlite_space(db)
            out.update(rebuilt=True, freed_bytes=(space["page_count"] - after["page_count"]) * page,
                       auto_vacuum="incremental" if after["auto_vacuum"] == 2 else out["auto_vacuum"])
        else:
            out["advice"] = ("the file has much free space but was made without incremental vacuum; with the "
                             "server stopped, run: sqlite3 <data dir>/tableforge.db "
                             "'PRAGMA auto_vacuum=INCREMENTAL; VACUUM;' once, and later runs give it back")
    return out


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

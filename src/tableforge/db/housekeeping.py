"""The database side of the maintenance jobs (services/maintenance): optimize (and SQLite's free
space), event-history retention, dead sessions and invites, which asset files rows still name.
The services never ask which database they are on; where the two differ, it is decided here.

Every delete runs in bounded batches, each its own short transaction, with a yield to the event
loop between them: a job never holds the SQLite writer (or PostgreSQL row locks) for long, so the
requests and moves queued behind it wait milliseconds, not the length of the job.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tableforge.db.engine import Database
from tableforge.db.schema import game_assets, game_rooms, registration_invites, room_events, sessions

# Rows deleted per transaction. SQLite has one writer: every move waits for the batch in progress,
# so its batches are small (bench/bench_maintenance.py). PostgreSQL locks only the rows deleted.
ROWS_PER_BATCH = {"postgresql": 2000, "sqlite": 500}
ROOMS_PER_BATCH = 200
HASHES_PER_QUERY = 500
SQLITE_VACUUM_BATCH_PAGES = 1024  # pages given back per step of an incremental vacuum (4 MiB at 4 KiB)
SQLITE_FULL_VACUUM_MAX_BYTES = 64 * 1024 * 1024  # rebuild a database of at most this size in one go…
SQLITE_FREE_RATIO = 0.2  # … when at least this share of it is free pages
SQLITE_FREE_MIN_BYTES = 1024 * 1024


async def _delete_batches(db: Database, table: sa.Table, key: list[sa.Column[Any]], victims: sa.Select[Any]) -> int:
    """Delete the rows `victims` selects (their `key` columns), ROWS_PER_BATCH per transaction.
    `victims` reads an alias of `table`, so it is never correlated with the DELETE's own rows."""
    target = sa.tuple_(*key) if len(key) > 1 else key[0]
    batch = ROWS_PER_BATCH[db.dialect]
    deleted = 0
    while True:
        async with db.write() as conn:
            n = (await conn.execute(sa.delete(table).where(target.in_(victims.limit(batch))))).rowcount
        deleted += max(n, 0)
        if n < batch:
            return deleted
        await asyncio.sleep(0)


# --- optimize -----------------------------------------------------------------------------------

async def optimize(db: Database) -> dict[str, Any]:
    """The optimize job: ANALYZE, and VACUUM (ANALYZE) the tables over the dead-row ratio
    (PostgreSQL, `reports.vacuum_analyze`); ANALYZE, PRAGMA optimize, then free pages given back to
    the file system (SQLite). `failed` lists the tables that could not be done."""
    from tableforge.db import reports  # only when the job runs: an idle server does not load the reports

    done = await reports.vacuum_analyze(db)
    actions = done["actions"]
    summary: dict[str, Any] = {
        "backend": done["backend"],
        "analyzed": sum(1 for a in actions if a["status"] == "ok"),
        "vacuumed": [a["table"] for a in actions if a["action"] == "vacuum_analyze" and a["status"] == "ok"],
        "failed": [{"table": a["table"], "error": a.get("error")} for a in actions if a["status"] != "ok"]}
    if not db.is_postgres:
        summary["space"] = await _sqlite_give_back(db)
    return summary


async def _sqlite_give_back(db: Database) -> dict[str, Any]:
    """Give free pages back. Incremental databases (every new one): a batch of pages per step,
    yielding in between. Older ones: rebuilt once as incremental when small (well under a second);
    a large one is left alone with advice, since the rebuild would hold every write for its length."""
    space = await sqlite_space(db)
    page = space["page_size"] or 4096
    before = space["freelist_count"]
    out: dict[str, Any] = {"file_bytes": space["page_count"] * page, "free_bytes": before * page,
                           "auto_vacuum": {0: "none", 1: "full", 2: "incremental"}.get(space["auto_vacuum"], "?")}
    if space["auto_vacuum"] == 2:
        left = before
        while left > 0:
            await sqlite_incremental_vacuum(db, SQLITE_VACUUM_BATCH_PAGES)
            now_free = (await sqlite_space(db))["freelist_count"]
            if now_free >= left:
                break  # nothing more came free (another writer refilled it): stop, never spin
            left = now_free
            await asyncio.sleep(0)
        out["freed_bytes"] = (before - left) * page
    elif space["auto_vacuum"] == 0 and out["free_bytes"] >= SQLITE_FREE_MIN_BYTES \
            and before >= SQLITE_FREE_RATIO * max(space["page_count"], 1):
        if out["file_bytes"] <= SQLITE_FULL_VACUUM_MAX_BYTES:
            await sqlite_vacuum_into_incremental(db)
            after = await sqlite_space(db)
            out.update(rebuilt=True, freed_bytes=(space["page_count"] - after["page_count"]) * page,
                       auto_vacuum="incremental" if after["auto_vacuum"] == 2 else out["auto_vacuum"])
        else:
            out["advice"] = ("the file has much free space but was made without incremental vacuum; with the "
                             "server stopped, run: sqlite3 <data dir>/tableforge.db "
                             "'PRAGMA auto_vacuum=INCREMENTAL; VACUUM;' once, and later runs give it back")
    return out


# --- event history --------------------------------------------------------------------------------

async def trim_event_history(db: Database, history_size: int) -> dict[str, int]:
    """Keep at most `history_size` events per open room and none for closed rooms.

    The event log already prunes a room's history as it grows (every 100th version); this catches
    what that cannot: rooms that went quiet between two prunes, every room after the history size
    was lowered, and closed rooms, whose history nobody can ask for (`join` refuses a closed room)."""
    rooms_seen = trimmed = closed = 0
    after: str | None = None
    ev_key = [room_events.c.room_id, room_events.c.version]
    old = room_events.alias("old")
    while True:
        query = sa.select(game_rooms.c.id, game_rooms.c.is_active).order_by(game_rooms.c.id).limit(ROOMS_PER_BATCH)
        if after is not None:
            query = query.where(game_rooms.c.id > after)
        async with db.read() as conn:
            batch = (await conn.execute(query)).all()
        if not batch:
            break
        after = str(batch[-1][0])
        rooms_seen += len(batch)
        open_ids = [str(r[0]) for r in batch if r[1]]
        closed_ids = [str(r[0]) for r in batch if not r[1]]
        if open_ids:
            # A join, not a correlated subquery: each room's rows past its cut are one index range.
            trimmed += await _delete_batches(db, room_events, ev_key, sa.select(old.c.room_id, old.c.version)
                                             .join(game_rooms, game_rooms.c.id == old.c.room_id)
                                             .where(game_rooms.c.id.in_(open_ids),
                                                    old.c.version <= game_rooms.c.version - history_size))
        if closed_ids:
            closed += await _delete_batches(db, room_events, ev_key, sa.select(old.c.room_id, old.c.version)
                                            .where(old.c.room_id.in_(closed_ids)))
        await asyncio.sleep(0)
    return {"rooms": rooms_seen, "events_trimmed": trimmed, "closed_room_events_deleted": closed,
            "history_size": history_size}


# --- sessions and invites -------------------------------------------------------------------------

async def delete_dead_sessions(db: Database, cutoff: datetime) -> dict[str, int]:
    """Sessions that expired, or were revoked, before `cutoff` (each through its own index)."""
    key, dead = [sessions.c.token_hash], sessions.alias("dead")
    expired = await _delete_batches(db, sessions, key, sa.select(dead.c.token_hash).where(dead.c.expires_at < cutoff))
    revoked = await _delete_batches(db, sessions, key, sa.select(dead.c.token_hash).where(
        dead.c.revoked_at.is_not(None), dead.c.revoked_at < cutoff))
    return {"sessions_expired_deleted": expired, "sessions_revoked_deleted": revoked}


async def delete_dead_invites(db: Database, cutoff: datetime) -> int:
    """Registration invites that can no longer be used, dead since before `cutoff`: expired,
    revoked, or used up (an invite records no time of last use, so: made before `cutoff`)."""
    inv = registration_invites.alias("dead")
    victims = sa.select(inv.c.id).where(sa.or_(inv.c.expires_at < cutoff, inv.c.revoked_at < cutoff,
                                               sa.and_(inv.c.used >= inv.c.uses, inv.c.created_at < cutoff)))
    return await _delete_batches(db, registration_invites, [registration_invites.c.id], victims)


# --- assets ---------------------------------------------------------------------------------------

async def referenced_hashes(db: Database, hashes: list[str]) -> set[str]:
    """Which of these file hashes some asset row still names (indexed by sha256)."""
    found: set[str] = set()
    for i in range(0, len(hashes), HASHES_PER_QUERY):
        chunk = hashes[i:i + HASHES_PER_QUERY]
        async with db.read() as conn:
            found.update(str(h) for h in (await conn.execute(
                sa.select(game_assets.c.sha256).where(game_assets.c.sha256.in_(chunk)).distinct())).scalars())
    return found


async def asset_rows(db: Database, after: str | None, limit: int) -> list[tuple[str, str, str]]:
    """(id, sha256, type) of asset rows after `after` by id: the rows whose files are checked."""
    query = sa.select(game_assets.c.id, game_assets.c.sha256, game_assets.c.type).order_by(game_assets.c.id)
    if after is not None:
        query = query.where(game_assets.c.id > after)
    async with db.read() as conn:
        return [(str(i), str(h), str(t)) for i, h, t in (await conn.execute(query.limit(limit))).all()]


# --- SQLite free space ----------------------------------------------------------------------------

async def sqlite_space(db: Database) -> dict[str, int]:
    """Page size and counts, and the auto_vacuum mode (0 none, 1 full, 2 incremental)."""
    out: dict[str, int] = {}
    async with db.read() as conn:
        for pragma in ("page_size", "page_count", "freelist_count", "auto_vacuum"):
            out[pragma] = int((await conn.execute(sa.text(f"PRAGMA {pragma}"))).scalar() or 0)
    return out


async def _sqlite_script(db: Database, script: str) -> None:
    """Run a script on the writer connection outside any transaction (VACUUM cannot run inside one,
    and Python's sqlite3 steps a PRAGMA such as incremental_vacuum to the end only in a script).
    Holding the single writer connection keeps every other write waiting meanwhile."""
    async with db.writer.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection  # aiosqlite's connection
        assert driver is not None
        await driver.executescript(script)


async def sqlite_incremental_vacuum(db: Database, pages: int) -> None:
    """Give up to `pages` free pages back to the file system (auto_vacuum = incremental only)."""
    await _sqlite_script(db, f"PRAGMA incremental_vacuum({int(pages)});")


async def sqlite_vacuum_into_incremental(db: Database) -> None:
    """Rebuild the file once with auto_vacuum = incremental: it gives back every free page now,
    and lets later runs give pages back a batch at a time instead of rebuilding the file again."""
    await _sqlite_script(db, "PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")

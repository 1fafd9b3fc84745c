"""The maintenance runs table and the jobs' SQL, on SQLite and PostgreSQL: one run of a job at a
time and one success per slot whatever the callers do, dead runs freed after the lease time, the
last N runs kept; event history, sessions and invites deleted exactly when dead."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tableforge.config import Settings
from tableforge.db import housekeeping
from tableforge.db import maintenance_runs as runs
from tableforge.db.engine import Database
from tableforge.db.migrate import upgrade
from tableforge.db.schema import game_rooms, maintenance_runs, registration_invites, room_events, sessions, users


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db_settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp(f"runs-{request.param}")
    if request.param == "postgres":
        return Settings(database_url=request.getfixturevalue("own_pg_url"), data_dir=data_dir)
    return Settings(data_dir=data_dir)


@pytest.fixture(scope="module")
async def db(db_settings: Settings) -> AsyncIterator[Database]:
    database = Database(db_settings)
    await upgrade(database)
    yield database
    await database.dispose()


def _job() -> str:
    return f"job-{uuid.uuid4().hex[:8]}"  # rows of this test only (the table is shared by the module)


async def _rows(db: Database, job: str) -> list[dict[str, object]]:
    async with db.read() as conn:
        return [dict(r) for r in (await conn.execute(
            sa.select(maintenance_runs).where(maintenance_runs.c.job == job).order_by(maintenance_runs.c.id)))
            .mappings()]


def _after(run: dict[str, Any], seconds: float) -> datetime:
    return run["started_at"] + timedelta(seconds=seconds)  # type: ignore[no-any-return]


async def test_a_job_runs_once_at_a_time(db: Database) -> None:
    job, other = _job(), _job()
    first = await runs.begin(db, job=job, trigger="api", instance_id="a", slot=None)
    assert first is not None and first["outcome"] == "running"
    assert await runs.begin(db, job=job, trigger="cli", instance_id="b", slot=None) is None
    assert await runs.begin(db, job=other, trigger="api", instance_id="b", slot=None) is not None  # others may
    assert await runs.finish(db, first, outcome="ok", ended=_after(first, 0.5), summary={"deleted": 3}, error=None,
                             keep=10)
    again = await runs.begin(db, job=job, trigger="cli", instance_id="b", slot=None)
    assert again is not None and again["id"] > first["id"]
    rows = await _rows(db, job)
    assert [(r["outcome"], r["instance_id"], r["trigger"]) for r in rows] == [("ok", "a", "api"),
                                                                              ("running", "b", "cli")]
    assert rows[0]["summary"] == {"deleted": 3} and rows[0]["duration_seconds"] == 0.5


async def test_a_slot_succeeds_once_and_a_failed_slot_may_be_retried(db: Database) -> None:
    job, slot = _job(), 1_800_000_000.0
    run = await runs.begin(db, job=job, trigger="schedule", instance_id="a", slot=slot)
    assert run is not None
    assert await runs.finish(db, run, outcome="failed", ended=_after(run, 0.1), summary=None, error="boom", keep=10)
    state = await runs.slot_runs(db, job, slot)
    assert (state.done, state.failures) == (False, 1)
    assert state.last_failure_end is not None and abs(state.last_failure_end - datetime.now(UTC).timestamp()) < 60
    retry = await runs.begin(db, job=job, trigger="schedule", instance_id="b", slot=slot)
    assert retry is not None  # a failure leaves the slot open
    assert await runs.finish(db, retry, outcome="ok", ended=_after(retry, 0.1), summary={}, error=None, keep=10)
    assert (await runs.slot_runs(db, job, slot)).done is True
    assert await runs.begin(db, job=job, trigger="schedule", instance_id="c", slot=slot) is None  # done: never twice
    assert await runs.begin(db, job=job, trigger="schedule", instance_id="c", slot=slot + 60) is not None
    assert [r["outcome"] for r in await _rows(db, job)] == ["failed", "ok", "running"]


async def test_a_dead_runner_frees_the_job_after_the_lease_time(db: Database) -> None:
    job = _job()
    dead = await runs.begin(db, job=job, trigger="schedule", instance_id="killed", slot=1_800_000_100.0)
    assert dead is not None
    assert await runs.abandon_stale(db, 30.0, job) == []  # fresh heartbeat: alive
    assert await runs.heartbeat(db, dead["id"])
    async with db.write() as conn:  # its heartbeat stopped a minute ago
        await conn.execute(sa.update(maintenance_runs).where(maintenance_runs.c.id == dead["id"])
                           .values(heartbeat_at=datetime.now(UTC) - timedelta(seconds=60)))
    assert await runs.begin(db, job=job, trigger="api", instance_id="b", slot=None) is None  # not yet marked
    assert await runs.abandon_stale(db, 30.0, job) == [job]
    row = (await _rows(db, job))[0]
    assert row["outcome"] == "abandoned" and row["error"] == runs.ABANDONED_ERROR
    # the dead one, were it only slow, learns it must stop, and cannot record an outcome
    assert await runs.heartbeat(db, dead["id"]) is False
    assert await runs.finish(db, dead, outcome="ok", ended=_after(dead, 1.0), summary={}, error=None, keep=10) is False
    assert (await _rows(db, job))[0]["outcome"] == "abandoned"
    # the slot it held is open again; the job may run
    assert (await runs.slot_runs(db, job, 1_800_000_100.0)).failures == 1
    assert await runs.begin(db, job=job, trigger="api", instance_id="b", slot=None) is not None


async def test_only_the_newest_runs_of_a_job_are_kept(db: Database) -> None:
    job, other = _job(), _job()
    kept_other = await runs.begin(db, job=other, trigger="api", instance_id="a", slot=None)
    assert kept_other is not None
    ids = []
    for i in range(6):
        run = await runs.begin(db, job=job, trigger="api", instance_id="a", slot=None)
        assert run is not None
        ids.append(run["id"])
        await runs.finish(db, run, outcome="ok" if i % 2 else "failed", ended=_after(run, 0.0), summary={},
                          error=None, keep=3)
    assert [r["id"] for r in await _rows(db, job)] == ids[-3:]
    assert [r["id"] for r in await _rows(db, other)] == [kept_other["id"]]  # other jobs untouched, running kept
    recent = (await runs.recent(db, (job, other), 2))
    assert [r["id"] for r in recent[job]["runs"]] == [ids[-1], ids[-2]]
    assert recent[job]["last_success"]["id"] == ids[-1] and recent[job]["running"] is None  # type: ignore[index]
    assert recent[other]["running"]["id"] == kept_other["id"]  # type: ignore[index]
    assert (await runs.last_successes(db))[job] > 0


async def _user(db: Database) -> str:
    user_id = str(uuid.uuid4())
    async with db.write() as conn:
        await conn.execute(sa.insert(users).values(id=user_id, username=f"u{uuid.uuid4().hex[:12]}", password_hash="x",
                                                   created_at=datetime.now(UTC)))
    return user_id


async def _room(db: Database, gm: str, *, version: int, active: bool) -> str:
    room_id = str(uuid.uuid4())
    async with db.write() as conn:
        await conn.execute(sa.insert(game_rooms).values(
            id=room_id, name="R", gm_id=gm, invite_code=uuid.uuid4().hex[:12], is_active=active, version=version,
            created_at=datetime.now(UTC)))
        await conn.execute(sa.insert(room_events), [{"room_id": room_id, "version": v, "body": "{}"}
                                                    for v in range(1, version + 1)])
    return room_id


async def _versions(db: Database, room_id: str) -> list[int]:
    async with db.read() as conn:
        return [int(v) for v in (await conn.execute(sa.select(room_events.c.version)
                                                    .where(room_events.c.room_id == room_id)
                                                    .order_by(room_events.c.version))).scalars()]


async def test_event_history_is_trimmed_per_room_and_closed_rooms_lose_theirs(db: Database,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(housekeeping, "ROWS_PER_BATCH", {"postgresql": 7, "sqlite": 7})  # several batches per room
    monkeypatch.setattr(housekeeping, "ROOMS_PER_BATCH", 2)
    gm = await _user(db)
    busy = await _room(db, gm, version=40, active=True)
    quiet = await _room(db, gm, version=8, active=True)
    closed = await _room(db, gm, version=15, active=False)
    done = await housekeeping.trim_event_history(db, history_size=10)
    assert await _versions(db, busy) == list(range(31, 41))
    assert await _versions(db, quiet) == list(range(1, 9))  # under the size: untouched
    assert await _versions(db, closed) == []
    assert done["events_trimmed"] >= 30 and done["closed_room_events_deleted"] >= 15  # other tests' rooms too
    again = await housekeeping.trim_event_history(db, history_size=10)
    assert again["events_trimmed"] == 0 and again["closed_room_events_deleted"] == 0


async def test_dead_sessions_and_invites_go_live_ones_stay(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(housekeeping, "ROWS_PER_BATCH", {"postgresql": 2, "sqlite": 2})
    user = await _user(db)
    now = datetime.now(UTC)
    long_ago, lately, later = now - timedelta(days=30), now - timedelta(hours=1), now + timedelta(days=1)
    rows = {"expired-long-ago": (long_ago - timedelta(days=1), long_ago, None),
            "expired-lately": (lately, lately, None),
            "revoked-long-ago": (long_ago, later, long_ago),
            "revoked-lately": (lately, later, lately),
            "live": (now, later, None)}
    tag = uuid.uuid4().hex[:8]
    async with db.write() as conn:
        await conn.execute(sa.insert(sessions), [
            {"token_hash": f"{name}-{tag}", "user_id": user, "created_at": c, "expires_at": e, "revoked_at": r}
            for name, (c, e, r) in rows.items()])
        await conn.execute(sa.insert(registration_invites), [
            {"id": str(uuid.uuid4()), "code_hash": f"{name}-{tag}", "created_by": user, "uses": uses, "used": used,
             "expires_at": exp, "revoked_at": rev, "created_at": made}
            for name, uses, used, exp, rev, made in (
                ("expired-long-ago", 1, 0, long_ago, None, long_ago), ("expired-lately", 1, 0, lately, None, long_ago),
                ("revoked-long-ago", 1, 0, None, long_ago, long_ago), ("used-up-old", 2, 2, None, None, long_ago),
                ("used-up-new", 2, 2, None, None, lately), ("open", 5, 1, later, None, long_ago))])
    cutoff = now - timedelta(days=7)
    deleted = await housekeeping.delete_dead_sessions(db, cutoff)
    assert deleted["sessions_expired_deleted"] >= 1 and deleted["sessions_revoked_deleted"] >= 1
    assert await housekeeping.delete_dead_invites(db, cutoff) >= 3
    async with db.read() as conn:
        left = {str(h).rsplit("-", 1)[0] for h in (await conn.execute(
            sa.select(sessions.c.token_hash).where(sessions.c.token_hash.like(f"%-{tag}")))).scalars()}
        invites = {str(h).rsplit("-", 1)[0] for h in (await conn.execute(
            sa.select(registration_invites.c.code_hash).where(registration_invites.c.code_hash.like(f"%-{tag}"))))
            .scalars()}
    assert left == {"expired-lately", "revoked-lately", "live"}
    assert invites == {"expired-lately", "used-up-new", "open"}


async def _fill_and_empty(db: Database) -> None:
    """2,000 rows of 1 KB in a scratch table, then deleted: about 2 MB of free pages."""
    async with db.write() as conn:
        await conn.execute(sa.text("CREATE TABLE IF NOT EXISTS scratch (x TEXT)"))
        await conn.execute(sa.text("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
                                   "INSERT INTO scratch SELECT hex(randomblob(512)) FROM n"))
    async with db.write() as conn:
        await conn.execute(sa.text("DELETE FROM scratch"))


async def test_sqlite_free_pages_go_back_to_the_file_system(tmp_path: Path) -> None:
    db = Database(Settings(data_dir=tmp_path / "new"))
    await upgrade(db)
    try:
        await _fill_and_empty(db)
        before = await housekeeping.sqlite_space(db)
        assert before["auto_vacuum"] == 2 and before["freelist_count"] * before["page_size"] > 1_000_000
        summary = await housekeeping.optimize(db)
        after = await housekeeping.sqlite_space(db)
        assert summary["failed"] == [] and summary["space"]["auto_vacuum"] == "incremental"
        assert after["freelist_count"] == 0 and after["page_count"] < before["page_count"]
        assert summary["space"]["freed_bytes"] == summary["space"]["free_bytes"] > 1_000_000
    finally:
        await db.dispose()


async def test_an_old_small_sqlite_file_is_rebuilt_as_incremental_once(tmp_path: Path) -> None:
    legacy = tmp_path / "old"
    legacy.mkdir()
    with sqlite3.connect(legacy / "tableforge.db") as made:  # as earlier versions made it: auto_vacuum none
        made.execute("PRAGMA auto_vacuum = NONE")
        made.execute("CREATE TABLE early (x TEXT)")
    db = Database(Settings(data_dir=legacy))
    await upgrade(db)
    try:
        await _fill_and_empty(db)
        before = await housekeeping.sqlite_space(db)
        assert before["auto_vacuum"] == 0
        summary = await housekeeping.optimize(db)
        after = await housekeeping.sqlite_space(db)
        assert summary["space"]["rebuilt"] is True and summary["space"]["auto_vacuum"] == "incremental"
        assert after["auto_vacuum"] == 2 and after["freelist_count"] == 0
        assert summary["space"]["freed_bytes"] >= 1_000_000
        async with db.read() as conn:  # the data survived the rebuild
            assert (await conn.execute(sa.text("SELECT count(*) FROM alembic_version"))).scalar() == 1
    finally:
        await db.dispose()

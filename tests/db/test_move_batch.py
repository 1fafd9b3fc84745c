"""Concurrent moves on both event logs (both write them in batches: db/pg_move_batch.py,
db/sqlite_event_log.py):
every acked move is in the database as a fresh connection reads it, each room's versions rise by
one with no gap, the history stays bounded and `since` answers the newest events, and a move that
became invalid while its batch waited gets its own precise error without costing the others."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
import sqlalchemy as sa

from tableforge.db.changes import UndoLast
from tableforge.db.event_log import PRUNE_EVERY, ChangeFog, EventLog, MoveToken, StoredEvent, TransactionalEventLog
from tableforge.db.pg_move_batch import BATCH_SQL
from tableforge.db.schema import board_tokens, room_events
from tableforge.db.undo_entry import Entry
from tableforge.domain.errors import AppError
from tableforge.observability import metrics
from tests.db.test_event_log import HISTORY, Room, _add, _open, _room
from tests.support.waiting import eventually


@pytest.fixture(params=["sqlite", "postgresql"])
async def log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventLog]:
    opened = await _open(request.getfixturevalue("pg_url") if request.param == "postgresql" else None, tmp_path)
    yield opened
    await opened.db.dispose()  # type: ignore[attr-defined]


@pytest.fixture
async def pg_log(pg_url: str, tmp_path: Path) -> AsyncIterator[EventLog]:
    opened = await _open(pg_url, tmp_path)
    yield opened
    await opened.db.dispose()  # type: ignore[attr-defined]


async def _tokens(log: EventLog, r: Room, count: int, by: str) -> list[str]:
    return [(await log.append(r.id, _add(r, by))).result["id"] for _ in range(count)]


def _batches() -> tuple[float, float]:
    """(batch statements so far, moves they wrote) from the batch-size histogram."""
    samples = {s.name: s.value for m in metrics.DB_MOVE_BATCH.collect() for s in m.samples}
    return samples["tableforge_db_move_batch_size_count"], samples["tableforge_db_move_batch_size_sum"]


async def _fresh_rows(log: EventLog, room_ids: list[str]) -> dict[tuple[str, int], str]:
    """Every stored event of these rooms, read on a connection of its own (not the log's pool)."""
    db = log.db  # type: ignore[attr-defined]
    if db.is_postgres:
        conn = await asyncpg.connect(db.url.replace("postgresql+asyncpg", "postgresql"))
        try:
            rows = await conn.fetch(
                "SELECT room_id::text, version, body FROM room_events WHERE room_id = ANY($1::uuid[])", room_ids)
        finally:
            await conn.close()
        return {(r[0], int(r[1])): r[2] for r in rows}
    engine = sa.create_engine(db.url.replace("sqlite+aiosqlite", "sqlite"))
    try:
        with engine.connect() as sync:
            rows = sync.execute(sa.select(room_events.c.room_id, room_events.c.version, room_events.c.body)
                                .where(room_events.c.room_id.in_(room_ids))).all()
    finally:
        engine.dispose()
    return {(str(r[0]), int(r[1])): r[2] for r in rows}


async def test_concurrent_moves_are_stored_gapless_and_durable_before_the_ack(log: EventLog) -> None:
    rooms = [await _room(log) for _ in range(3)]
    tokens = {r.id: await _tokens(log, r, 4, r.alice) for r in rooms}  # versions 1..4 of each room
    before = _batches()
    moves = [(r, t, i) for i in range(3) for r in rooms for t in tokens[r.id]]  # 36 moves, 3 per token
    acked: list[StoredEvent[Any]] = await asyncio.gather(*(
        log.append(r.id, MoveToken(r.alice, t, float(i), 1.0, r.alice, None)) for r, t, i in moves))

    for r in rooms:
        mine = sorted(e.version for e in acked if e.room_id == r.id)
        assert mine == list(range(5, 17)), "each room: one version per move, no gap, no repeat"
    stored = await _fresh_rows(log, [r.id for r in rooms])
    for event in acked:
        assert stored[(event.room_id, event.version)] == event.body.decode(), "acked: already in the database"
    db = log.db  # type: ignore[attr-defined]
    async with db.read() as conn:
        versions = dict((await conn.execute(sa.select(board_tokens.c.id, board_tokens.c.version).where(
            board_tokens.c.room_id.in_([r.id for r in rooms])))).all())
    assert {str(k): int(v) for k, v in versions.items()} == {t: 4 for ts in tokens.values() for t in ts}
    for event in acked:  # a token's three moves come back with its versions 2, 3, 4 and their bodies say so
        assert orjson.loads(event.body)["token_version"] == event.result
    statements, written = (a - b for a, b in zip(_batches(), before, strict=True))
    assert written == len(moves) and statements < len(moves), "written in batches"


async def test_history_stays_bounded_under_concurrent_moves(log: EventLog) -> None:
    rooms = [await _room(log) for _ in range(2)]
    tokens = {r.id: await _tokens(log, r, 5, r.gm) for r in rooms}
    for i in range(50):  # 2 rooms x 250 moves, in waves of 10 concurrent moves, across two prune points
        await asyncio.gather(*(log.append(r.id, MoveToken(r.gm, t, float(i), 0.0, None, None))
                               for r in rooms for t in tokens[r.id]))
    for r in rooms:
        current, events = await log.since(r.id, 0)
        assert current == 255
        versions = [e.version for e in events]
        assert versions == list(range(current - len(versions) + 1, current + 1)), "the newest, contiguous"
        assert HISTORY <= len(versions) < HISTORY + PRUNE_EVERY, "bounded: pruned every PRUNE_EVERY versions"
        current, events = await log.since(r.id, 250)
        assert (current, [e.version for e in events]) == (255, [251, 252, 253, 254, 255])


async def test_a_move_that_became_invalid_in_its_batch_gets_its_error_alone(pg_log: EventLog) -> None:
    """The batch's snapshot saw alice owning her token; while the batch waited for the room's lock
    the token was given to the GM. The statement aborts (no version is taken), each move is retried
    alone: alice gets not_token_owner, the other moves are stored with gapless versions."""
    log = pg_log
    r, other = await _room(log), await _room(log)
    alices = await _tokens(log, r, 1, r.alice)
    gms = await _tokens(log, r, 2, r.gm) + await _tokens(log, other, 2, other.gm)
    db = log.db  # type: ignore[attr-defined]
    blocker = await asyncpg.connect(db.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM game_rooms WHERE id = $1 FOR UPDATE", uuid.UUID(r.id))
        await blocker.execute("UPDATE board_tokens SET owner_id = $2 WHERE id = $1", uuid.UUID(alices[0]),
                              uuid.UUID(r.gm))
        before = _batches()
        moving = asyncio.gather(
            log.append(r.id, MoveToken(r.alice, alices[0], 7.0, 7.0, r.alice, None)),
            *(log.append(room.id, MoveToken(room.gm, t, 7.0, 7.0, None, None))
              for room, t in ((r, gms[0]), (r, gms[1]), (other, gms[2]), (other, gms[3]))),
            return_exceptions=True)

        async def waiting() -> bool:  # the batch statement is waiting for the room's lock
            return bool(await blocker.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                               "current_database() AND wait_event_type = 'Lock'"))

        await eventually(waiting, what="the batch waiting for the room's lock")
        await tx.commit()
        results = await moving
    finally:
        await blocker.close()
    assert _batches()[0] > before[0]
    refused, *stored = results
    assert isinstance(refused, AppError) and refused.code == "not_token_owner"
    assert all(isinstance(s, StoredEvent) for s in stored), stored
    assert sorted(s.version for s in stored if s.room_id == r.id) == [4, 5]  # after 3 token.added, no gap
    assert sorted(s.version for s in stored if s.room_id == other.id) == [3, 4]
    assert await log.versions([r.id, other.id]) == {r.id: 5, other.id: 4}
    rows = await _fresh_rows(log, [r.id, other.id])
    assert all(rows[(s.room_id, s.version)] == s.body.decode() for s in stored)


@pytest.mark.parametrize("owner", [True, False])
async def test_guard_refusals_in_a_batch_are_precise(log: EventLog, owner: bool) -> None:
    r = await _room(log)
    mine, gms = await _tokens(log, r, 2, r.alice), await _tokens(log, r, 1, r.gm)
    by, who = (r.alice, r.alice) if owner else (r.gm, None)
    results = await asyncio.gather(
        log.append(r.id, MoveToken(by, mine[0], 1.0, 1.0, who, None)),
        log.append(r.id, MoveToken(by, mine[1], 1.0, 1.0, who, 5)),  # stale if_version
        log.append(r.id, MoveToken(by, gms[0], 1.0, 1.0, who, None)),  # alice may not move the GM's token
        log.append(r.id, MoveToken(by, str(uuid.uuid4()), 1.0, 1.0, who, None)),
        return_exceptions=True)
    first, stale, gm_token, missing = results
    assert isinstance(first, StoredEvent) and first.version == 4
    assert isinstance(stale, AppError) and (stale.code, stale.details) == ("conflict", {"version": 1})
    if owner:
        assert isinstance(gm_token, AppError) and gm_token.code == "not_token_owner"
        assert await log.versions([r.id]) == {r.id: 4}
    else:
        assert isinstance(gm_token, StoredEvent) and gm_token.version == 5
        assert await log.versions([r.id]) == {r.id: 5}
    assert isinstance(missing, AppError) and missing.code == "token_not_found"



async def test_moves_under_fog_stay_lean_and_follow_a_fog_changed_elsewhere(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two instances (two logs on one database). On a room with fog, a move that leaves the token as
    fogged as it was is one statement (no transaction); a move into a fog changed by the other
    instance (this one's cached fog is stale) is still routed by the new fog: players lose the token."""
    here, there = await _open(pg_url, tmp_path / "a"), await _open(pg_url, tmp_path / "b")
    try:
        r = await _room(here)
        token = (await here.append(r.id, _add(r, r.gm))).result["id"]  # at (1, 2)
        await here.append(r.id, ChangeFog(r.gm, r.scene, "hide", {"type": "rect", "x": 100, "y": 100, "width": 5,
                                                                  "height": 5}))
        transactions = 0
        real = TransactionalEventLog.append

        async def counted(self: TransactionalEventLog, room_id: str, change: Any) -> Any:
            nonlocal transactions
            transactions += 1
            return await real(self, room_id, change)

        monkeypatch.setattr(TransactionalEventLog, "append", counted)
        first = await here.append(r.id, MoveToken(r.gm, token, 3, 3, None, None))
        assert first.routing.audience == f"g@{r.scene};p" and not first.routing.variants
        moves = [await here.append(r.id, MoveToken(r.gm, token, 4 + i, 4, None, None)) for i in range(5)]
        assert [m.routing.audience for m in moves] == [f"g@{r.scene};p"] * 5
        assert transactions <= 1, "on a room with fog, moves that change nobody's view take the lean statement"

        await there.append(r.id, ChangeFog(r.gm, r.scene, "hide", {"type": "rect", "x": 10, "y": 10, "width": 5,
                                                                   "height": 5}))
        hidden = await here.append(r.id, MoveToken(r.gm, token, 12, 12, None, None))
        assert hidden.routing.audience == f"g@{r.scene}"
        assert [(sel, orjson.loads(body)["type"]) for sel, body in hidden.routing.variants] == [
            ("p", "token.removed")], "routed by the other instance's fog, not the stale copy"
        db = here.db  # type: ignore[attr-defined]
        async with db.read() as conn:
            assert (await conn.execute(sa.select(board_tokens.c.fogged).where(board_tokens.c.id == token))
                    ).scalar() is True
        under = await here.append(r.id, MoveToken(r.gm, token, 13, 13, None, None))
        assert under.routing.audience == f"g@{r.scene}" and not under.routing.variants
        current, events = await here.since(r.id, 0)
        assert [e.version for e in events] == list(range(1, current + 1))
    finally:
        for opened in (here, there):
            await opened.db.dispose()  # type: ignore[attr-defined]


async def test_a_fog_change_committed_while_a_move_waits_routes_that_move(pg_log: EventLog) -> None:
    """A fog change holds the room's lock while it rewrites the scene's fog; a move whose statement
    started before it committed must not use the fog it had cached (the scene row is read under
    its lock, at its newest version)."""
    log = pg_log
    r = await _room(log)
    token = (await log.append(r.id, _add(r, r.gm))).result["id"]
    await log.append(r.id, ChangeFog(r.gm, r.scene, "hide", {"type": "rect", "x": 100, "y": 100, "width": 5,
                                                             "height": 5}))
    for i in range(2):  # the room is known to have fog, and its fog is cached
        await log.append(r.id, MoveToken(r.gm, token, 3 + i, 3, None, None))
    db = log.db  # type: ignore[attr-defined]
    blocker = await asyncpg.connect(db.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM game_rooms WHERE id = $1 FOR UPDATE", uuid.UUID(r.id))
        fog = {"base": "revealed", "shapes": [{"op": "hide", "type": "rect", "x": 10, "y": 10, "width": 5,
                                               "height": 5}]}
        await blocker.execute("UPDATE scenes SET fog = $2::jsonb, fog_count = 1, fog_version = fog_version + 1 "
                              "WHERE id = $1", uuid.UUID(r.scene), orjson.dumps(fog).decode())
        moving = asyncio.ensure_future(log.append(r.id, MoveToken(r.gm, token, 12, 12, None, None)))

        async def waiting() -> bool:
            return bool(await blocker.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                               "current_database() AND wait_event_type = 'Lock'"))

        await eventually(waiting, what="the move waiting for the room's lock")
        await tx.commit()
        moved = await moving
    finally:
        await blocker.close()
    assert moved.routing.audience == f"g@{r.scene}"
    assert [(sel, orjson.loads(body)["type"]) for sel, body in moved.routing.variants] == [("p", "token.removed")]


async def test_a_batch_locks_its_rooms_in_id_order(pg_log: EventLog) -> None:
    """Two batches never deadlock because each locks its rooms sorted by id: in the plan, the row
    locks are taken above the sort (PostgreSQL could otherwise lock in any order)."""
    db = pg_log.db  # type: ignore[attr-defined]
    conn = await asyncpg.connect(db.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute("PREPARE batch AS " + BATCH_SQL)
        ids = "'{" + ",".join(str(uuid.uuid4()) for _ in range(2)) + "}'"
        plan = orjson.loads(await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) EXECUTE batch({ids}, {ids}, '{{1,2}}', '{{1,2}}', '{{a,b}}', '{{a,b}}', "
            "'{a,b}', '{NULL,NULL}', '{NULL,NULL}', '{NULL,NULL}')"))
    finally:
        await conn.close()
    lock = next(p for p in plan[0]["Plan"]["Plans"] if p.get("Subplan Name") == "CTE lk")
    assert lock["Node Type"] == "LockRows"
    assert [(p["Node Type"], p.get("Sort Key")) for p in lock["Plans"]] == [("Sort", ["g_1.id"])]


async def test_every_move_path_stores_the_undo_entry_an_undo_needs(log: EventLog,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Moves written in a batch, alone in a transaction (the lean path), and on a room with fog (on
    PostgreSQL the one fogged statement): each event says who may undo it and where the token was
    before, as the transactional path encodes it, and undoing walks back through all of them."""
    r = await _room(log)
    tokens = await _tokens(log, r, 3, r.alice)  # versions 1..3, each token at (1, 2)
    before = _batches()
    await asyncio.gather(*(log.append(r.id, MoveToken(r.alice, t, 10.0 + i, 20.0, r.alice, None))
                           for i, t in enumerate(tokens)))  # versions 4..6
    assert _batches()[1] - before[1] == 3, "the three moves went through the batch"
    first = tokens[0]
    await TransactionalEventLog.append(log, r.id, MoveToken(r.alice, first, 30.0, 40.0, r.alice, None))  # 7
    await log.append(r.id, ChangeFog(r.gm, r.scene, "hide", {"type": "rect", "x": 100, "y": 100, "width": 5,
                                                             "height": 5}))  # 8
    transactions = 0
    real = TransactionalEventLog.append

    async def counted(self: TransactionalEventLog, room_id: str, change: Any) -> Any:
        nonlocal transactions
        transactions += 1
        return await real(self, room_id, change)

    monkeypatch.setattr(TransactionalEventLog, "append", counted)
    await log.append(r.id, MoveToken(r.alice, first, 50.0, 60.0, r.alice, None))  # 9
    db = log.db  # type: ignore[attr-defined]
    if db.is_postgres:
        assert transactions == 0, "on PostgreSQL the move on a room with fog is the one fogged statement"

    async with db.read() as conn:
        rows = (await conn.execute(sa.select(room_events.c.version, room_events.c.undo_by, room_events.c.undo)
                                   .where(room_events.c.room_id == r.id, room_events.c.version > 3)
                                   .order_by(room_events.c.version))).all()
    entries = {int(v): (None if by is None else str(by), None if undo is None else Entry.decode(undo))
               for v, by, undo in rows}
    assert entries.pop(8) == (None, None), "a fog change is not undoable"
    assert entries.pop(7) == (r.alice, Entry("token.moved", first, 3, {"x": 10.0, "y": 20.0}, 2))
    assert entries.pop(9) == (r.alice, Entry("token.moved", first, 4, {"x": 30.0, "y": 40.0}, 3))
    assert sorted((by, e.token_id, e.version, e.base, e.prior["x"], e.prior["y"])  # type: ignore[union-attr]
                  for by, e in entries.values()) == sorted(
        (r.alice, t, 2, 1, 1.0, 2.0) for t in tokens), "each batched move: from (1, 2), by its mover"

    undo = UndoLast(r.alice, r.alice, "owner")
    walked = [orjson.loads((await log.append(r.id, undo)).body) for _ in range(5)]
    assert [(e["token_id"], e["x"], e["y"]) for e in walked[:2]] == [(first, 30.0, 40.0), (first, 10.0, 20.0)]
    async with db.read() as conn:
        positions = {str(k): (float(x), float(y)) for k, x, y in (await conn.execute(
            sa.select(board_tokens.c.id, board_tokens.c.x, board_tokens.c.y)
            .where(board_tokens.c.room_id == r.id))).all()}
    assert positions == {t: (1.0, 2.0) for t in tokens}, "five undos: every token back where it was added"

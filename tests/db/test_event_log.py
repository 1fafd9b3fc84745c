"""The room event log, on both implementations (SQLite transactional, PostgreSQL one-statement):
every change stores exactly the body the one encoder gives, versions rise by one with no gap, the
guards refuse with the same domain errors and store nothing, and the history is pruned."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tableforge.config import Settings
from tableforge.db.changes import UndoLast
from tableforge.db.engine import Database
from tableforge.db.event_log import (
    ROOM_VERSION,
    TOKEN_VERSION,
    AddAsset,
    AddToken,
    ChangeFog,
    EventLog,
    MoveToken,
    PostMessage,
    RemoveAsset,
    RemoveToken,
    SetPresence,
    StoredEvent,
    TransactionalEventLog,
    UpdateToken,
    body_template,
    encode_body,
)
from tableforge.db.migrate import upgrade
from tableforge.db.schema import UUID, board_tokens, game_assets, game_rooms, room_events, room_players, scenes, users
from tableforge.db.undo_entry import Entry
from tableforge.domain.errors import AppError

HISTORY = 5


def test_template_fills_to_the_encoded_body() -> None:
    payload = {"token_id": "t", "x": 1.5, "y": -2.0, "token_version": TOKEN_VERSION}
    template = body_template("token.moved", "r", 12.5, "u", payload)
    assert template.marks == (0, 1)
    assert template.fill(7, 3) == encode_body("token.moved", "r", 7, 12.5, "u", payload | {"token_version": 3})
    # A mark inside a user's text is text, not a version.
    text = f'"version":{ROOM_VERSION} "token_version":{TOKEN_VERSION}'
    message = {"text": text, "version": ROOM_VERSION}
    template = body_template("chat.message", "r", 1.0, "u", {"message": message})
    assert template.marks == (0, 0)
    assert template.fill(9) == encode_body("chat.message", "r", 9, 1.0, "u", {"message": message | {"version": 9}})


async def _open(url: str | None, tmp_path: Path) -> EventLog:
    db = Database(Settings(database_url=url, data_dir=tmp_path))  # type: ignore[arg-type]
    await upgrade(db)
    if db.is_postgres:
        from tableforge.db.pg_event_log import PgEventLog

        return PgEventLog(db, HISTORY)
    from tableforge.db.sqlite_event_log import SqliteEventLog

    return SqliteEventLog(db, HISTORY)


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


class Room:
    def __init__(self) -> None:
        self.id, self.gm, self.alice = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
        self.asset, self.other_room, self.other_asset = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
        self.scene = ""


async def _room(log: EventLog) -> Room:
    r, now = Room(), datetime.now(UTC)
    db: Database = log.db  # type: ignore[attr-defined]
    async with db.write() as conn:
        for uid in (r.gm, r.alice):
            await conn.execute(sa.insert(users).values(id=uid, username=uid[:30], password_hash="x", created_at=now))
        for rid in (r.id, r.other_room):
            await conn.execute(sa.insert(game_rooms).values(id=rid, name="r", gm_id=r.gm, invite_code=rid[:16],
                                                            created_at=now))
            scene = str(uuid.uuid4())  # every room has its players' scene (migration 0004)
            await conn.execute(sa.insert(scenes).values(id=scene, room_id=rid, name="s", position=0, grid={},
                                                        fog={"base": "revealed", "shapes": []}, created_at=now))
            await conn.execute(sa.update(game_rooms).where(game_rooms.c.id == rid).values(players_scene_id=scene))
            if rid == r.id:
                r.scene = scene
        for uid, role in ((r.gm, "gm"), (r.alice, "player")):
            await conn.execute(sa.insert(room_players).values(room_id=r.id, user_id=uid, role=role, joined_at=now))
        for aid, rid in ((r.asset, r.id), (r.other_asset, r.other_room)):
            await conn.execute(sa.insert(game_assets).values(id=aid, **_asset_row(rid, r.gm, now)))
    return r


def _asset_row(room_id: str, by: str, now: datetime) -> dict[str, Any]:
    return {"room_id": room_id, "uploader_id": by, "name": "a", "type": "png", "sha256": "ab" * 32,
            "file_path": "x", "width": 1, "height": 1, "size": 1, "created_at": now}


def _check(stored: StoredEvent[Any], room_id: str, version: int, etype: str, by: str) -> dict[str, Any]:
    """The stored body is the encoder's output for this event; returns its payload."""
    event = orjson.loads(stored.body)
    assert (stored.version, event["type"], event["version"], event["by"]) == (version, etype, version, by)
    payload = {k: v for k, v in event.items() if k not in ("type", "room_id", "version", "ts", "by")}
    assert stored.body == encode_body(etype, room_id, version, stored.ts, by, payload)
    return payload


def _add(r: Room, by: str, asset: str | None = None) -> AddToken:
    return AddToken(by, str(uuid.uuid4()), asset or r.asset, 1.0, 2.0, 0.0, 1.0, 0, datetime.now(UTC))


async def test_every_change_stores_its_event(log: EventLog) -> None:
    r = await _room(log)
    added = await log.append(r.id, _add(r, r.alice))
    assert _check(added, r.id, 1, "token.added", r.alice) == {"token": added.result}
    token_id = added.result["id"]
    assert added.result["owner_id"] == r.alice and added.result["version"] == 1

    moved = await log.append(r.id, MoveToken(r.alice, token_id, 5, 6, r.alice, 1))
    assert moved.result == 2
    assert _check(moved, r.id, 2, "token.moved", r.alice) == {"token_id": token_id, "x": 5.0, "y": 6.0,
                                                              "token_version": 2}
    updated = await log.append(r.id, UpdateToken(r.gm, token_id, {"rotation": 90.0}, None, None))
    assert updated.result["rotation"] == 90.0 and updated.result["x"] == 5.0 and updated.result["version"] == 3
    assert _check(updated, r.id, 3, "token.updated", r.gm) == {"token": updated.result}

    chat = await log.append(r.id, PostMessage(r.alice, "alice", str(uuid.uuid4()), "hi", None, datetime.now(UTC)))
    assert chat.result["version"] == 4 and chat.result["text"] == "hi" and chat.result["username"] == "alice"
    assert _check(chat, r.id, 4, "chat.message", r.alice) == {"message": chat.result}
    roll = {"notation": "1d6", "total": 4, "rolls": [4]}
    dice = await log.append(r.id, PostMessage(r.alice, "alice", str(uuid.uuid4()), "1d6 = 4", roll,
                                              datetime.now(UTC)))
    assert dice.result["total"] == 4 and dice.result["username"] == "alice"
    assert _check(dice, r.id, 5, "dice.rolled", r.alice) == {"roll": dice.result}

    profile = {"id": r.alice, "username": r.alice[:30], "first_name": None, "last_name": None,
               "profile_image_url": None}
    joined = await log.append(r.id, SetPresence(r.alice, True, profile))  # no role at hand: read from the database
    assert _check(joined, r.id, 6, "player.joined", r.alice) == {"user": profile, "role": "player"}
    left = await log.append(r.id, SetPresence(r.alice, False))  # no profile at hand: read from the database
    assert _check(left, r.id, 7, "player.left", r.alice) == {"user": profile}

    removed = await log.append(r.id, RemoveToken(r.alice, token_id, r.alice, 3))
    assert _check(removed, r.id, 8, "token.removed", r.alice) == {"token_id": token_id}

    since = await log.since(r.id, 2)
    assert since[0] == 8
    assert [(row.version, row.body.encode()) for row in since[1]] == [(e.version, e.body) for e in
                                                       (updated, chat, dice, joined, left, removed)]
    assert await log.versions([r.id, r.other_room, str(uuid.uuid4())]) == {r.id: 8, r.other_room: 0}


async def test_assets_store_one_event_per_removed_token(log: EventLog) -> None:
    r = await _room(log)
    asset_id, now = str(uuid.uuid4()), datetime.now(UTC)
    shape = {"id": asset_id, "name": "a"}
    added = await log.append(r.id, AddAsset(r.gm, {"id": asset_id} | _asset_row(r.id, r.gm, now), shape))
    assert _check(added, r.id, 1, "asset.added", r.gm) == {"asset": shape}
    tokens = [(await log.append(r.id, _add(r, r.gm, asset_id))).result["id"] for _ in range(2)]
    removed = await log.append(r.id, RemoveAsset(r.gm, asset_id, "ab" * 32))
    assert removed.result is True  # r.asset has the same bytes: the file stays
    events = removed.all()
    assert [e.version for e in events] == [4, 5, 6]
    assert [_check(e, r.id, e.version, "token.removed", r.gm) for e in events[:2]] == [
        {"token_id": t} for t in tokens]
    assert _check(events[2], r.id, 6, "asset.removed", r.gm) == {"asset_id": asset_id, "reason": "deleted"}
    assert [row.version for row in (await log.history(r.id, 3, 6))] == [4, 5, 6]


async def _refused(log: EventLog, room_id: str, change: Any) -> AppError:
    with pytest.raises(AppError) as caught:
        await log.append(room_id, change)
    return caught.value


async def test_guards_refuse_with_domain_errors_and_store_nothing(log: EventLog) -> None:
    r = await _room(log)
    gm_token = (await log.append(r.id, _add(r, r.gm))).result["id"]
    assert (await _refused(log, r.id, MoveToken(r.alice, gm_token, 1, 1, r.alice, None))).code == "not_token_owner"
    stale = await _refused(log, r.id, MoveToken(r.gm, gm_token, 1, 1, None, 7))
    assert (stale.code, stale.details) == ("conflict", {"version": 1})
    assert (await _refused(log, r.id, UpdateToken(r.alice, gm_token, {"scale": 2.0}, r.alice, None))).code \
        == "not_token_owner"
    assert (await _refused(log, r.id, RemoveToken(r.gm, str(uuid.uuid4()), None, None))).code == "token_not_found"
    assert (await _refused(log, r.id, _add(r, r.gm, r.other_asset))).code == "asset_not_found"
    assert (await _refused(log, str(uuid.uuid4()), _add(r, r.gm))).code == "room_not_found"
    assert await log.versions([r.id]) == {r.id: 1}

    db: Database = log.db  # type: ignore[attr-defined]
    async with db.write() as conn:
        await conn.execute(sa.update(game_rooms).where(game_rooms.c.id == r.id).values(is_active=False))
    chat = PostMessage(r.gm, "gm", str(uuid.uuid4()), "hi", None, datetime.now(UTC))
    assert (await _refused(log, r.id, chat)).code == "room_closed"
    assert (await _refused(log, r.id, MoveToken(r.gm, gm_token, 1, 1, None, None))).code == "room_closed"
    assert await log.versions([r.id]) == {r.id: 1}
    async with db.read() as conn:
        assert (await conn.execute(sa.select(board_tokens.c.version).where(board_tokens.c.id == gm_token))
                ).scalar() == 1


async def test_history_is_pruned(log: EventLog) -> None:
    r = await _room(log)
    token_id = (await log.append(r.id, _add(r, r.gm))).result["id"]
    for i in range(99):
        await log.append(r.id, MoveToken(r.gm, token_id, i, i, None, None))
    current, events = await log.since(r.id, 0)
    assert current == 100
    assert [row.version for row in events] == list(range(100 - HISTORY + 1, 101))


async def test_membership_tells_role_open_and_scene(log: EventLog) -> None:
    """What `join` reads before it attaches a socket: the same on both logs (PostgreSQL reads it on
    a lane, not through the pool)."""
    r = await _room(log)
    assert await log.membership(r.id, r.alice) == ("player", True, r.scene)
    assert await log.membership(r.id, r.gm) == ("gm", True, r.scene)
    stranger = await log.membership(r.id, str(uuid.uuid4()))
    assert stranger == (None, True, r.scene), "a non-member of a room that exists"
    assert await log.membership(str(uuid.uuid4()), r.alice) is None, "no such room"
    db: Database = log.db  # type: ignore[attr-defined]
    async with db.write() as conn:
        await conn.execute(sa.update(game_rooms).where(game_rooms.c.id == r.id).values(is_active=False))
    assert await log.membership(r.id, r.alice) == ("player", False, r.scene)
    assert await log.since(str(uuid.uuid4()), 0) == (0, []), "no such room: nothing to replay"
    assert await log.since(r.id, 0) == (0, [])
    assert await log.versions([]) == {}


async def test_postgres_join_reads_skip_the_pool(pg_log: EventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """`join`'s reads (membership, the missed events) and the hub's versions go to a lane on
    PostgreSQL: no pool checkout, no SQLAlchemy statement."""
    log = pg_log
    r = await _room(log)
    said = await log.append(r.id, PostMessage(r.alice, "alice", str(uuid.uuid4()), "hi", None, datetime.now(UTC)))
    db: Database = log.db  # type: ignore[attr-defined]

    def no_pool() -> Any:
        raise AssertionError("a pool connection was checked out")

    monkeypatch.setattr(db, "read", no_pool)
    assert await log.membership(r.id, r.alice) == ("player", True, r.scene)
    current, rows = await log.since(r.id, 0)
    assert (current, [(row.version, row.body.encode(), row.audience) for row in rows]) == (1, [(1, said.body, None)])
    assert await log.versions([r.id, r.other_room]) == {r.id: 1, r.other_room: 0}


async def test_postgres_moves_in_one_statement(pg_log: EventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot changes never take the transactional path on PostgreSQL when they are valid (a room
    without fog). Adding a token takes one statement too (tests/db/test_token_add.py)."""
    log = pg_log
    r = await _room(log)
    token_id = (await log.append(r.id, _add(r, r.gm))).result["id"]
    assert (await log.append(r.id, _add(r, r.alice))).version == 2

    async def no_transaction(*_: Any) -> Any:
        raise AssertionError("the transactional path ran")

    monkeypatch.setattr(TransactionalEventLog, "append", no_transaction)
    moved = await log.append(r.id, MoveToken(r.gm, token_id, 3, 4, None, 1))
    assert (moved.version, moved.result) == (3, 2)
    assert moved.routing.audience == f"g@{r.scene};p", "players see it: the GMs of its scene and the players"
    said = await log.append(r.id, PostMessage(r.alice, "alice", str(uuid.uuid4()), "hi", None, datetime.now(UTC)))
    assert said.result["version"] == 4
    profile = {"id": r.alice, "username": "alice", "first_name": None, "last_name": None, "profile_image_url": None}
    assert _check(await log.append(r.id, SetPresence(r.alice, True, profile, "spectator")), r.id, 5, "player.joined",
                  r.alice) == {"user": profile, "role": "spectator"}, "the joiner's role as the socket joined with it"
    with pytest.raises(AssertionError):  # a refusal is explained by the transaction
        await log.append(r.id, MoveToken(r.gm, token_id, 3, 4, None, 1))


async def test_audiences_follow_what_players_see(log: EventLog) -> None:
    """Every change stores who gets what: hidden tokens for the GMs of their scene, flips as variants
    for players, fog changes with the tokens they cover or uncover; the same on both logs (on
    PostgreSQL, a room with fog moves through the transaction, which reads the fog)."""
    r = await _room(log)
    hidden = await log.append(r.id, AddToken(r.gm, str(uuid.uuid4()), r.asset, 1.0, 1.0, 0.0, 1.0, 0,
                                             datetime.now(UTC), hidden=True))
    assert hidden.routing.audience == f"g@{r.scene}" and not hidden.routing.variants
    token_id = hidden.result["id"]
    moved = await log.append(r.id, MoveToken(r.gm, token_id, 2, 2, None, None))
    assert moved.routing.audience == f"g@{r.scene}", "a hidden move: GMs of the scene, a skip for the rest"
    shown = await log.append(r.id, UpdateToken(r.gm, token_id, {"hidden": False}, None, None))
    assert [(sel, orjson.loads(body)["type"]) for sel, body in shown.routing.variants] == [("p", "token.added")]
    assert orjson.loads(shown.routing.variants[0][1])["token"] == shown.result
    with pytest.raises(AppError) as refused:  # a player may not touch what players cannot see...
        await log.append(r.id, MoveToken(r.alice, hidden.result["id"], 0, 0, r.alice, None))
    assert refused.value.code == "not_token_owner", "...but this one they see: the owner check speaks"
    fog = await log.append(r.id, ChangeFog(r.gm, r.scene, "hide", {"type": "rect", "x": 0, "y": 0, "width": 5,
                                                                  "height": 5}))
    players = orjson.loads(dict(fog.routing.variants)["p"])
    assert players["tokens_removed"] == [token_id] and players["tokens_added"] == []
    assert "tokens_removed" not in orjson.loads(fog.body), "the GMs' copy does not carry them"
    within = await log.append(r.id, MoveToken(r.gm, token_id, 3, 3, None, None))
    assert within.routing.audience == f"g@{r.scene}" and not within.routing.variants
    out = await log.append(r.id, MoveToken(r.gm, token_id, 9, 9, None, None))
    assert [(sel, orjson.loads(body)["type"]) for sel, body in out.routing.variants] == [("p", "token.added")]
    back_in = await log.append(r.id, MoveToken(r.gm, token_id, 4, 4, None, None))
    assert [(sel, orjson.loads(body)["type"]) for sel, body in back_in.routing.variants] == [("p", "token.removed")]
    with pytest.raises(AppError) as refused:
        await log.append(r.id, MoveToken(r.gm, token_id, 4, 4, r.alice, None))
    assert refused.value.code == "token_not_found", "under fog: as if it did not exist, before the owner check"
    cleared = await log.append(r.id, ChangeFog(r.gm, r.scene, "reveal_all", None))
    assert [t["id"] for t in orjson.loads(dict(cleared.routing.variants)["p"])["tokens_added"]] == [token_id]
    again = await log.append(r.id, MoveToken(r.gm, token_id, 5, 5, None, None))
    assert again.routing.audience == f"g@{r.scene};p"
    _, stored = await log.since(r.id, 0)
    assert [(row.version, row.audience, row.routing) for row in stored][-1] == (again.version, again.routing.audience,
                                                                                  again.routing)


async def test_a_move_stores_its_undo_entry_and_an_undo_walks_back(log: EventLog) -> None:
    """The entry a move stores (on PostgreSQL by the one statement itself, which must not fall back to
    the transaction: the room is then not hinted as fogged), and two undos in a row inverting it."""
    r = await _room(log)
    token_id = (await log.append(r.id, _add(r, r.alice))).result["id"]
    for x in (5.5, 7.25):
        await log.append(r.id, MoveToken(r.alice, token_id, x, 6, r.alice, None))
    assert r.id not in getattr(log, "_fogged", {}), "the move took the one-statement path"
    db: Database = log.db  # type: ignore[attr-defined]
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(room_events.c.version, room_events.c.undo_by, room_events.c.undo)
                                   .where(room_events.c.room_id == r.id).order_by(room_events.c.version))).all()
    entries = [(v, str(by), Entry.decode(undo)) for v, by, undo in rows]
    assert entries == [(1, r.alice, Entry("token.added", token_id, 1, {}, 0)),
                       (2, r.alice, Entry("token.moved", token_id, 2, {"x": 1.0, "y": 2.0}, 1)),
                       (3, r.alice, Entry("token.moved", token_id, 3, {"x": 5.5, "y": 6.0}, 2))]
    undo = UndoLast(r.alice, r.alice, "owner")
    first = await log.append(r.id, undo)
    assert first.result == {"type": "token.moved", "token_id": token_id}
    assert _check(first, r.id, 4, "token.moved", r.alice) == {"token_id": token_id, "x": 5.5, "y": 6.0,
                                                              "token_version": 4}
    second = await log.append(r.id, undo)
    assert _check(second, r.id, 5, "token.moved", r.alice)["x"] == 1.0
    assert (await log.append(r.id, undo)).result == {"type": "token.added", "token_id": token_id}
    assert (await _refused(log, r.id, undo)).code == "nothing_to_undo"


async def test_undoing_a_removal_puts_the_token_back_unless_its_asset_is_gone(log: EventLog) -> None:
    """A removal undone: the same id, owner and fields at the version after the one it had. When the
    asset went meanwhile, the refusal drops the entry, and each next undo goes to the change before."""
    r = await _room(log)
    kept = (await log.append(r.id, _add(r, r.alice))).result["id"]
    await log.append(r.id, UpdateToken(r.alice, kept, {"name": "Alia", "rotation": 30.0}, r.alice, None))
    await log.append(r.id, RemoveToken(r.alice, kept, r.alice, None))
    undo = UndoLast(r.alice, r.alice, "owner")
    back = await log.append(r.id, undo)
    assert back.result == {"type": "token.removed", "token_id": kept}
    token = _check(back, r.id, 4, "token.added", r.alice)["token"]
    assert (token["id"], token["owner_id"], token["name"], token["rotation"], token["version"]) == (
        kept, r.alice, "Alia", 30.0, 3)
    renamed = await log.append(r.id, undo)  # the update before the removal is next
    assert _check(renamed, r.id, 5, "token.updated", r.alice)["token"]["name"] == ""

    asset_id = str(uuid.uuid4())
    await log.append(r.id, AddAsset(r.gm, {"id": asset_id} | _asset_row(r.id, r.gm, datetime.now(UTC)), {}))
    gone = (await log.append(r.id, _add(r, r.alice, asset_id))).result["id"]
    await log.append(r.id, RemoveToken(r.alice, gone, r.alice, None))
    await log.append(r.id, RemoveAsset(r.gm, asset_id, "ab" * 32))
    assert (await _refused(log, r.id, undo)).code == "asset_not_found"
    # dropped: the next undo is of the addition before it (its token is gone with the asset)
    assert (await _refused(log, r.id, undo)).code == "token_not_found"
    removed = await log.append(r.id, undo)  # then the first token's addition, after its own two undos
    assert removed.result == {"type": "token.added", "token_id": kept}
    assert _check(removed, r.id, removed.version, "token.removed", r.alice) == {"token_id": kept}
    assert (await _refused(log, r.id, undo)).code == "nothing_to_undo"


async def test_read_rows_reads_a_statement_with_its_own_literals_on_both_databases(log: EventLog) -> None:
    """`read_rows` (the snapshot's and the players' list's hot reads): named parameters, values the
    statement fixes itself (a literal, a LIMIT), rows by column name; on PostgreSQL the compiled
    statements kept are bounded, however many statement objects a caller builds."""
    r = await _room(log)
    param = sa.bindparam("room_id", type_=UUID)
    query = (sa.select(room_players.c.user_id, room_players.c.role)
             .where(room_players.c.room_id == param, room_players.c.role != "spectator")
             .order_by(room_players.c.role).limit(5))
    rows = await log.read_rows(query, {"room_id": r.id})
    assert [(str(row["user_id"]), row["role"]) for row in rows] == [(r.gm, "gm"), (r.alice, "player")]
    first = await log.read_row(query.where(room_players.c.role == "player"), {"room_id": r.id})
    assert first is not None and str(first["user_id"]) == r.alice
    assert await log.read_row(query, {"room_id": r.other_room}) is None
    from tableforge.db.pg_event_log import PgEventLog

    if isinstance(log, PgEventLog):
        for limit in range(PgEventLog.READ_SQL_MAX + 10):  # a statement built per call: never kept unbounded
            assert len(await log.read_rows(query.limit(limit + 1), {"room_id": r.id})) == min(limit + 1, 2)
        assert len(log._read_sql) == PgEventLog.READ_SQL_MAX

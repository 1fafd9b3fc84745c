"""`token.add` on both logs (SQLite transactional; PostgreSQL one statement with a kept room context):
who receives which copy, the refusals, fog, other scenes, template defaults and undo, and that a
context gone stale (the players' scene moved, fog drawn, the asset hidden, the template edited, or
all of it in the instant the add waited for the room) never stores a wrong audience."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tableforge.db.changes import ActivateScene, CreateScene, SetAssetHidden, UndoLast
from tableforge.db.engine import Database
from tableforge.db.event_log import ROOM_VERSION, AddToken, ChangeFog, EventLog, TransactionalEventLog
from tableforge.db.schema import board_tokens, game_assets, game_rooms, game_systems, room_events
from tableforge.db.undo_entry import Entry
from tableforge.domain.audience import Picker, View, decode_variants
from tableforge.domain.errors import AppError
from tests.db import test_event_log as base
from tests.db.test_event_log import Room, _check, _refused, _room
from tests.support.waiting import eventually

log, pg_log = base.log, base.pg_log  # the event log fixtures: both databases, and PostgreSQL alone

BARS = [{"key": "hp", "label": "HP", "value": 10, "max": 10, "color": "#c0392b", "visibility": "owners"},
        {"key": "ac", "label": "AC", "value": 12, "color": "#7f8c8d", "visibility": "everyone"}]


def _add(r: Room, by: str, *, x: float = 1.0, y: float = 2.0, scene: str | None = None, is_gm: bool = False,
         asset: str | None = None) -> AddToken:
    return AddToken(by, str(uuid.uuid4()), asset or r.asset, x, y, 0.0, 1.0, 0, datetime.now(UTC), scene,
                    is_gm=is_gm)


def _db(log: EventLog) -> Database:
    return log.db  # type: ignore[attr-defined, no-any-return]


def _frames(stored: Any) -> dict[str, Any]:
    """What a GM of the token's scene, the owner alice (a player) and another player receive."""
    token = orjson.loads(stored.body).get("token", {})
    picker = Picker(stored.room_id, stored.version, stored.body.decode(), stored.routing)
    views = {"gm": View("gm", token.get("scene_id"), "g"), "alice": View("player", None, token.get("owner_id")),
             "bob": View("player", None, str(uuid.uuid4()))}
    return {name: orjson.loads(picker.frame(view)) for name, view in views.items()}


async def _with_system(log: EventLog, r: Room, bars: list[dict[str, Any]]) -> str:
    system_id, now = str(uuid.uuid4()), datetime.now(UTC)
    async with _db(log).write() as conn:
        await conn.execute(sa.insert(game_systems).values(
            id=system_id, name="s", category="fantasy", complexity="light", created_at=now, updated_at=now,
            template={"token_defaults": {"size": 2, "bars": bars}}))
        await conn.execute(sa.update(game_rooms).where(game_rooms.c.id == r.id).values(game_system_id=system_id))
    return system_id


async def _stored_row(log: EventLog, room_id: str, version: int) -> Any:
    async with _db(log).read() as conn:
        return (await conn.execute(sa.select(room_events).where(room_events.c.room_id == room_id,
                                                                room_events.c.version == version))).mappings().one()


async def _token_row(log: EventLog, token_id: str) -> Any:
    async with _db(log).read() as conn:
        return (await conn.execute(sa.select(board_tokens).where(board_tokens.c.id == token_id))).mappings().first()


async def test_an_add_stores_each_audience_its_copy_with_the_template_defaults(log: EventLog) -> None:
    r = await _room(log)
    await _with_system(log, r, BARS)
    for n in (1, 2):  # the second add on PostgreSQL: from the kept context
        added = await log.append(r.id, _add(r, r.alice))
        token = _check(added, r.id, n, "token.added", r.alice)["token"]
        assert (token["size"], [b["key"] for b in token["bars"]]) == (2.0, ["hp", "ac"])
        frames = _frames(added)
        assert frames["gm"]["token"] == token and frames["alice"]["token"] == token, "GM and owner: every bar"
        assert [b["key"] for b in frames["bob"]["token"]["bars"]] == ["ac"], "another player: no owners' bar"
        assert frames["bob"]["version"] == n and frames["bob"]["type"] == "token.added"
        row = await _stored_row(log, r.id, n)
        assert (row["body"].encode(), row["audience"], row["variants"]) == (
            added.body, added.routing.audience, added.routing.encoded_variants()), "recovery gives the same frames"
        undo = Entry("token.added", token["id"], 1, {}, 0)
        assert (str(row["undo_by"]), Entry.decode(row["undo"])) == (r.alice, undo)
        stored = await _token_row(log, token["id"])
        assert (stored["size"], stored["bars"], stored["fogged"], stored["asset_hidden"]) == (2.0, token["bars"],
                                                                                             False, False)


async def test_copies_keep_user_text_that_looks_like_a_version_mark(log: EventLog) -> None:
    """The copies are stored with the version the statement takes (PostgreSQL: a template split at the
    version's mark): a name spelling that mark, escaped twice in the stored copies, stays text."""
    r = await _room(log)
    name = f'"version":{ROOM_VERSION} \\"version\\":{ROOM_VERSION}'[:64]
    c = _add(r, r.gm, is_gm=True)
    for _ in range(2):
        c = replace(c, token_id=str(uuid.uuid4()), fields={"name": name, "name_visibility": "gm"})
        added = await log.append(r.id, c)
        assert added.result["name"] == name
        row = await _stored_row(log, r.id, added.version)
        assert row["variants"] == added.routing.encoded_variants()
        frames = _frames(added)
        assert frames["gm"]["token"]["name"] == name and frames["bob"]["token"]["name"] == ""
        assert frames["bob"]["version"] == added.version
        assert [(sel, orjson.loads(body)["version"]) for sel, body in decode_variants(row["variants"])] == [
            ("p", added.version)]


async def test_an_add_is_refused_exactly_and_stores_nothing(log: EventLog) -> None:
    r = await _room(log)
    assert (await log.append(r.id, _add(r, r.alice))).version == 1  # (PostgreSQL: the context is kept now)
    other_scene = str(uuid.uuid4())
    await log.append(r.id, CreateScene(r.gm, other_scene, "cellar", None, None, datetime.now(UTC)))
    assert (await _refused(log, r.id, _add(r, r.alice, scene=other_scene))).code == "scene_not_found"
    assert (await _refused(log, r.id, _add(r, r.gm, scene=str(uuid.uuid4()), is_gm=True))).code == "scene_not_found"
    assert (await _refused(log, r.id, _add(r, r.alice, asset=r.other_asset))).code == "asset_not_found"
    assert (await _refused(log, r.id, _add(r, r.alice, asset=str(uuid.uuid4())))).code == "asset_not_found"
    await log.append(r.id, SetAssetHidden(r.gm, r.asset, True, {"id": r.asset}))
    hidden = await _refused(log, r.id, _add(r, r.alice))
    assert (hidden.code, hidden.message) == ("asset_not_found", "no such asset in this room"), \
        "a hidden asset, to a player: as if it did not exist"
    assert (await _refused(log, str(uuid.uuid4()), _add(r, r.gm, is_gm=True))).code == "room_not_found"
    assert await log.versions([r.id]) == {r.id: 3}
    async with _db(log).read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).where(board_tokens.c.room_id == r.id))).scalar() == 1


async def test_a_gm_adds_a_hidden_asset_and_to_another_scene_for_gms_only(log: EventLog) -> None:
    r = await _room(log)
    await log.append(r.id, _add(r, r.gm, is_gm=True))
    await log.append(r.id, SetAssetHidden(r.gm, r.asset, True, {"id": r.asset}))
    layer = await log.append(r.id, _add(r, r.gm, is_gm=True))
    frames = _frames(layer)
    assert frames["gm"]["type"] == "token.added" and frames["bob"]["type"] == "room.skip"
    assert frames["alice"]["type"] == "room.skip"
    assert (await _token_row(log, layer.result["id"]))["asset_hidden"] is True
    await log.append(r.id, SetAssetHidden(r.gm, r.asset, False, {"id": r.asset}))
    other_scene = str(uuid.uuid4())
    await log.append(r.id, CreateScene(r.gm, other_scene, "cellar", None, None, datetime.now(UTC)))
    away = await log.append(r.id, _add(r, r.gm, scene=other_scene, is_gm=True))
    assert away.routing.audience == f"g@{other_scene}" and not away.routing.variants
    assert _frames(away)["bob"]["type"] == "room.skip"
    assert (await _token_row(log, away.result["id"]))["scene_id"] == other_scene
    # The players' scene moves to the cellar: a player's add (no scene named) goes there, seen.
    await log.append(r.id, ActivateScene(r.gm, other_scene))
    there = await log.append(r.id, _add(r, r.alice))
    assert there.result["scene_id"] == other_scene and there.routing.audience == f"g@{other_scene};p"
    assert (await _refused(log, r.id, _add(r, r.alice, scene=r.scene))).code == "scene_not_found"


async def test_a_token_added_under_fog_never_reaches_players(log: EventLog) -> None:
    r = await _room(log)
    assert _frames(await log.append(r.id, _add(r, r.alice)))["bob"]["type"] == "token.added"  # fog-free so far
    await log.append(r.id, ChangeFog(r.gm, r.scene, "hide", {"type": "rect", "x": 0, "y": 0, "width": 5,
                                                             "height": 5}))
    for _ in range(2):  # the second: PostgreSQL's statement for a room with fog, from the cached fog
        under = await log.append(r.id, _add(r, r.alice, x=1, y=2))
        assert under.routing.audience == f"g@{r.scene}" and not under.routing.variants
        frames = _frames(under)
        assert frames["gm"]["token"]["id"] == under.result["id"]
        assert frames["alice"]["type"] == "room.skip" and frames["bob"]["type"] == "room.skip", \
            "not even its owner: under fog it is not on the players' board"
        assert (await _token_row(log, under.result["id"]))["fogged"] is True
        row = await _stored_row(log, r.id, under.version)
        assert (row["audience"], row["variants"]) == (f"g@{r.scene}", None)
    outside = await log.append(r.id, _add(r, r.alice, x=9, y=9))
    assert outside.routing.audience == f"g@{r.scene};p"
    assert (await _token_row(log, outside.result["id"]))["fogged"] is False
    await log.append(r.id, ChangeFog(r.gm, r.scene, "hide", {"type": "rect", "x": 8, "y": 8, "width": 5,
                                                             "height": 5}))
    assert (await log.append(r.id, _add(r, r.alice, x=9, y=9))).routing.audience == f"g@{r.scene}", \
        "the fog changed since it was kept: the add sees the new one"


async def test_undoing_an_add_removes_the_token(log: EventLog) -> None:
    r = await _room(log)
    await _with_system(log, r, BARS)
    added = (await log.append(r.id, _add(r, r.alice))).result["id"]
    undone = await log.append(r.id, UndoLast(r.alice, r.alice, "owner"))
    assert undone.result == {"type": "token.added", "token_id": added}
    assert _check(undone, r.id, 2, "token.removed", r.alice) == {"token_id": added}
    assert await _token_row(log, added) is None
    assert (await _refused(log, r.id, UndoLast(r.alice, r.alice, "owner"))).code == "nothing_to_undo"


async def test_an_edited_template_gives_its_new_defaults(log: EventLog) -> None:
    r = await _room(log)
    system_id = await _with_system(log, r, BARS)
    assert len((await log.append(r.id, _add(r, r.alice))).result["bars"]) == 2
    async with _db(log).write() as conn:
        await conn.execute(sa.update(game_systems).where(game_systems.c.id == system_id).values(
            template={"token_defaults": {"size": 3, "bars": BARS[1:]}}, updated_at=datetime.now(UTC)))
    added = (await log.append(r.id, _add(r, r.alice))).result
    assert (added["size"], [b["key"] for b in added["bars"]]) == (3.0, ["ac"])


async def test_postgres_adds_in_one_statement(pg_log: EventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid add never takes the transaction once the room's context is kept, fog or not; a stale
    context takes it once (and is read afresh)."""
    log = pg_log
    r = await _room(log)
    await _with_system(log, r, BARS)
    await log.append(r.id, _add(r, r.alice))
    calls: list[str] = []
    transactional = TransactionalEventLog.append

    async def counted(self: Any, room_id: str, change: Any) -> Any:
        calls.append(type(change).__name__)
        return await transactional(self, room_id, change)

    monkeypatch.setattr(TransactionalEventLog, "append", counted)
    for x in (1.0, 2.0):
        await log.append(r.id, _add(r, r.alice, x=x))
    assert calls == []
    await log.append(r.id, ChangeFog(r.gm, r.scene, "hide", {"type": "rect", "x": 0, "y": 0, "width": 5,
                                                             "height": 5}))
    calls.clear()
    first = await log.append(r.id, _add(r, r.alice))
    assert calls == ["AddToken"] and first.routing.audience == f"g@{r.scene}", "kept as fog-free: refused, then right"
    for x in (1.0, 9.0):
        await log.append(r.id, _add(r, r.alice, x=x))
    assert calls == ["AddToken"], "the room with fog: one statement too"


async def _blocked_on_a_lock(log: EventLog) -> None:
    """Until some session of the test's database waits for a row lock."""
    async with _db(log).read() as conn:
        async def waiting() -> bool:
            return bool((await conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"))).scalar())

        await eventually(waiting, what="the add waiting for the room's lock")


@pytest.mark.parametrize("is_gm", [True, False])
async def test_postgres_an_asset_hidden_while_the_add_waits_is_hidden(pg_log: EventLog, is_gm: bool) -> None:
    """The asset hidden by a change that holds the room (as SetAssetHidden does) while the one-statement
    add waits for it, the add's snapshot older than that: the add must not show players the token (a
    GM's add) or must refuse (a player's)."""
    log = pg_log
    r = await _room(log)
    await log.append(r.id, _add(r, r.alice))  # the context is kept: fog-free, asset visible
    by = r.gm if is_gm else r.alice
    async with _db(log).engine.connect() as other:
        async with other.begin():
            await other.execute(sa.select(game_rooms.c.id).where(game_rooms.c.id == r.id).with_for_update())
            adding = asyncio.ensure_future(log.append(r.id, _add(r, by, is_gm=is_gm)))
            await _blocked_on_a_lock(log)
            await other.execute(sa.update(game_assets).where(game_assets.c.id == r.asset).values(hidden=True))
            await other.execute(sa.update(board_tokens).where(board_tokens.c.asset_id == r.asset)
                                .values(asset_hidden=True))
        if not is_gm:
            with pytest.raises(AppError) as refused:
                await adding
            assert refused.value.code == "asset_not_found"
            assert await log.versions([r.id]) == {r.id: 1}
            return
        added = await adding
    assert added.routing.audience == f"g@{r.scene}" and not added.routing.variants
    assert _frames(added)["bob"]["type"] == "room.skip"
    assert (await _token_row(log, added.result["id"]))["asset_hidden"] is True


"""The play services on the in-memory backends, in-process: an embedded runtime (SQLite in a temp dir,
MemoryBroker, memory cache) built by `build_runtime`, and sockets that record what they are sent.

What a player must see: every stored change as one event with the next room version, in order;
the sender gets its result, never the event as well; a refused change stores nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tableforge.config import Settings
from tableforge.db import migrate
from tableforge.domain.errors import Conflict, Forbidden, NotFound
from tableforge.realtime.connection import Connection
from tableforge.services import assets, chat, play, rooms, tokens, users
from tableforge.services.runtime import Runtime
from tableforge.wiring.backends import build_runtime
from tests.support.client import png_bytes
from tests.support.waiting import wait_until

_ids = itertools.count()


class Socket:
    """A player's socket as the player sees it: decoded frames, in the order they were written."""

    def __init__(self, rt: Runtime, user: dict[str, Any]) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closes: list[int] = []

        async def send(text: str) -> None:
            self.frames.append(orjson.loads(text))

        async def close(code: int, reason: str) -> None:
            self.closes.append(code)

        self.conn = Connection(f"c{next(_ids)}", user["id"], user["username"], send, close, 64)
        self.conn.profile = {"id": user["id"], "username": user["username"]}
        self.conn.start()
        rt.hub.add_connection(self.conn)

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "version" in f and f.get("type") != "ack"]

    def acks(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == "ack"]


@pytest.fixture(scope="module")
async def rt(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    data_dir: Path = tmp_path_factory.mktemp("embedded")
    runtime = build_runtime(Settings(data_dir=data_dir, database_url=None, redis_url=None, seed_catalog=False,
                                     redis_namespace="", instance_id="test-embedded"))
    assert not runtime.db.is_postgres and type(runtime.broker).__name__ == "MemoryBroker"
    await runtime.cache.start()
    await migrate.upgrade(runtime.db)
    runtime.hub.start()
    await runtime.broker.start()
    yield runtime
    for conn in list(runtime.hub.connections.values()):
        await play.disconnect(runtime, conn)
        await conn.stop()
    await runtime.close()


async def table(rt: Runtime) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A GM, a player who joined by invite, the room, and an asset on it."""
    suffix = next(_ids)
    gm = await users.create_user(rt, f"gm{suffix}", "correct horse")
    player = await users.create_user(rt, f"pl{suffix}", "correct horse")
    room = await rooms.create(rt, gm, "Table", None)
    await rooms.join_by_invite(rt, player, room["invite_code"])
    asset = await assets.upload(rt, gm, room["id"], "map", "map.png", png_bytes())
    return gm, player, room, asset


async def joined(rt: Runtime, user: dict[str, Any], room_id: str, since: int | None = None) -> Socket:
    socket = Socket(rt, user)
    await play.join(rt, socket.conn, room_id, since, "join-1")
    await wait_until(lambda: socket.acks() != [], what="the join ack")
    return socket


async def test_changes_reach_the_room_as_consecutive_versions_in_order(rt: Runtime) -> None:
    gm, player, room, asset = await table(rt)
    room_id = room["id"]
    watcher = await joined(rt, player, room_id)
    ack = watcher.acks()[0]
    assert ack["id"] == "join-1" and ack["role"] == "player"
    start = ack["version"]
    assert [t["asset_id"] for t in ack["snapshot"]["tokens"]] == []

    token, v_add = await tokens.add(rt, gm["id"], room_id, asset["id"], 10.0, 20.0, 0.0, 1.0, 0)
    v_move, token_version = await tokens.move(rt, gm["id"], "gm", room_id, token["id"], 30.0, 40.0, None)
    message, v_chat = await chat.send(rt, gm["id"], gm["username"], room_id, "hello table")
    roll, v_roll = await chat.roll(rt, player["id"], player["username"], room_id, "2d6+1")
    v_remove = await tokens.remove(rt, gm["id"], "gm", room_id, token["id"], token_version)

    assert [v_add, v_move, v_chat, v_roll, v_remove] == list(range(start + 1, start + 6))
    assert token_version == 2 and message["text"] == "hello table" and 3 <= roll["total"] <= 13
    await wait_until(lambda: len(watcher.events()) == 5, what="five events")
    seen = watcher.events()
    assert [(e["type"], e["version"]) for e in seen] == [
        ("token.added", v_add), ("token.moved", v_move), ("chat.message", v_chat), ("dice.rolled", v_roll),
        ("token.removed", v_remove)]
    assert all(e["room_id"] == room_id for e in seen)
    assert seen[0]["token"]["id"] == token["id"] and seen[0]["token"]["owner_id"] == gm["id"]
    assert (seen[1]["token_id"], seen[1]["x"], seen[1]["y"], seen[1]["token_version"]) == (token["id"], 30.0, 40.0, 2)
    assert seen[2]["message"]["text"] == "hello table" and seen[2]["by"] == gm["id"]
    assert seen[3]["roll"]["total"] == roll["total"] and seen[3]["roll"]["username"] == player["username"]
    assert seen[4]["token_id"] == token["id"]

    snapshot = await rooms.snapshot(rt, room_id, player)
    assert snapshot["room"]["version"] == v_remove and snapshot["tokens"] == []
    assert [m["text"] for m in snapshot["messages"]][-2:] == ["hello table", roll_text(roll)]


def roll_text(roll: dict[str, Any]) -> str:
    return f"{roll['notation']} = {roll['total']}"


async def test_the_sender_gets_its_result_and_not_the_event(rt: Runtime) -> None:
    gm, player, room, _asset = await table(rt)
    room_id = room["id"]
    gm_socket = await joined(rt, gm, room_id)
    player_socket = await joined(rt, player, room_id)
    await wait_until(lambda: [e["type"] for e in gm_socket.events()] == ["player.joined"],
                     what="the GM told that the player joined")
    _, version = await chat.send(rt, gm["id"], gm["username"], room_id, "from my socket", sender=gm_socket.conn)
    _, v_player = await chat.send(rt, player["id"], player["username"], room_id, "and mine")
    await wait_until(lambda: len(player_socket.events()) == 2, what="both messages at the player")
    assert [(e["type"], e["version"]) for e in player_socket.events()] == [
        ("chat.message", version), ("chat.message", v_player)]
    await wait_until(lambda: len(gm_socket.events()) == 2, what="the player's message at the GM")
    assert [e.get("message", {}).get("text") for e in gm_socket.events()] == [None, "and mine"]


async def test_a_refused_change_stores_nothing_and_sends_nothing(rt: Runtime) -> None:
    gm, player, room, asset = await table(rt)
    room_id = room["id"]
    watcher = await joined(rt, gm, room_id)
    token, v_add = await tokens.add(rt, gm["id"], room_id, asset["id"], 1.0, 1.0, 0.0, 1.0, 0)
    with pytest.raises(Forbidden) as not_owner:
        await tokens.move(rt, player["id"], "player", room_id, token["id"], 5.0, 5.0, None)
    assert not_owner.value.code == "not_token_owner"
    with pytest.raises(Conflict) as stale:
        await tokens.move(rt, gm["id"], "gm", room_id, token["id"], 5.0, 5.0, 7)
    assert stale.value.code == "conflict" and stale.value.details == {"version": 1}
    with pytest.raises(NotFound) as missing:
        await tokens.remove(rt, gm["id"], "gm", room_id, "00000000-0000-0000-0000-000000000000", None)
    assert missing.value.code == "token_not_found"
    other_room = await rooms.create(rt, gm, "Other", None)
    with pytest.raises(NotFound) as wrong_asset:
        await tokens.add(rt, gm["id"], other_room["id"], asset["id"], 0.0, 0.0, 0.0, 1.0, 0)
    assert wrong_asset.value.code == "asset_not_found"
    # the next accepted change takes the very next version: the refusals took none
    v_move, token_version = await tokens.move(rt, gm["id"], "gm", room_id, token["id"], 2.0, 3.0, 1)
    assert (v_move, token_version) == (v_add + 1, 2)
    await wait_until(lambda: len(watcher.events()) == 2, what="the add and the move")
    assert [(e["type"], e["version"]) for e in watcher.events()] == [("token.added", v_add), ("token.moved", v_move)]
    snapshot = await rooms.snapshot(rt, room_id, gm)
    assert [(t["x"], t["y"], t["version"]) for t in snapshot["tokens"]] == [(2.0, 3.0, 2)]


async def test_a_socket_that_rejoins_with_since_gets_what_it_missed_in_its_ack(rt: Runtime) -> None:
    gm, player, room, asset = await table(rt)
    room_id = room["id"]
    first = await joined(rt, player, room_id)
    seen_upto = first.acks()[0]["version"]
    await play.leave(rt, first.conn, room_id)
    _, v1 = await chat.send(rt, gm["id"], gm["username"], room_id, "while you were away")
    _token, v2 = await tokens.add(rt, gm["id"], room_id, asset["id"], 4.0, 4.0, 0.0, 1.0, 0)
    again = await joined(rt, player, room_id, since=seen_upto)
    ack = again.acks()[0]
    # the missed events: the player's own leave and rejoin are stored too, so compare by what moved
    missed = [(e["type"], e["version"]) for e in ack["events"]]
    assert ("chat.message", v1) in missed and ("token.added", v2) in missed
    assert [v for _, v in missed] == list(range(seen_upto + 1, ack["version"] + 1))
    assert "snapshot" not in ack
    _, v3 = await chat.send(rt, gm["id"], gm["username"], room_id, "welcome back")
    await wait_until(lambda: [e["version"] for e in again.events()] == [v3], what="the next event live")

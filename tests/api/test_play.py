"""Two or more players at one table over the WebSocket protocol."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.client import Api, Player, Ws
from tests.support.waiting import eventually


async def test_two_players_see_moves_chat_and_dice_in_version_order(api: Api) -> None:
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    asset = await api.asset(gm, room["id"])
    a, b = await api.ws(gm), await api.ws(alice)
    try:
        ja = await a.request("join", room_id=room["id"])
        assert ja["type"] == "ack" and ja["role"] == "gm" and ja["snapshot"]["room"]["id"] == room["id"]
        jb = await b.request("join", room_id=room["id"])
        joined = await a.next_event("player.joined")
        assert joined["user"]["id"] == alice.id and joined["version"] == jb["version"]
        online = {p["user"]["id"] for p in jb["snapshot"]["players"] if p["is_online"]}
        assert online == {gm.id, alice.id}

        add = await a.request("token.add", room_id=room["id"], asset_id=asset["id"], x=10, y=20)
        assert add["type"] == "ack" and add["token"]["version"] == 1
        added = await b.next_event()
        assert added["type"] == "token.added" and added["token"] == add["token"] and added["by"] == gm.id
        versions = [joined["version"], add["version"]]

        mv = await a.request("token.move", room_id=room["id"], token_id=add["token"]["id"], x=30, y=40)
        moved = await b.next_event()
        assert (moved["type"], moved["token_id"], moved["x"], moved["y"]) == ("token.moved", add["token"]["id"], 30, 40)
        assert moved["version"] == mv["version"] and isinstance(moved["ts"], float)

        chat = await b.request("chat.send", room_id=room["id"], text="hello table")
        heard = await a.next_event()
        assert heard["type"] == "chat.message" and heard["message"]["text"] == "hello table"
        assert heard["message"]["username"] == alice.user["username"] and heard["version"] == chat["version"]

        roll = await b.request("dice.roll", room_id=room["id"], notation="4d6kh3+2")
        seen = await a.next_event()
        assert seen["type"] == "dice.rolled" and seen["roll"]["total"] == roll["roll"]["total"]
        r = seen["roll"]
        assert len(r["rolls"][0]) == 4 and len(r["kept"][0]) == 3 and r["modifier"] == 2
        assert r["total"] == sum(r["kept"][0]) + 2 and sorted(r["kept"][0]) == sorted(r["rolls"][0])[1:]

        versions += [mv["version"], chat["version"], roll["version"]]
        assert versions == list(range(versions[0], versions[0] + 5)), "consecutive versions, no gaps"
        # The sender never gets its own event: events reach a socket in version order, so the next one
        # each sees is the other's next change, not one of its own from before.
        over = await b.request("chat.send", room_id=room["id"], text="over to you")
        assert (await a.next_event())["version"] == over["version"], "a's own events never came"
        back = await a.request("chat.send", room_id=room["id"], text="and back")
        assert (await b.next_event())["version"] == back["version"], "b's own events never came"
        assert [over["version"], back["version"]] == [versions[-1] + 1, versions[-1] + 2]

        snap = await api.snapshot(alice, room["id"])
        assert snap["room"]["version"] == back["version"]
        assert [m["kind"] for m in snap["messages"]][-4:] == ["chat", "roll", "chat", "chat"]
        assert [m["text"] for m in snap["messages"]][-2:] == ["over to you", "and back"]
        assert snap["tokens"][0]["x"] == 30 and snap["tokens"][0]["version"] == 2
    finally:
        await a.close()
        await b.close()


async def test_reconnect_with_since_gets_exactly_what_was_missed(api: Api) -> None:
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    asset = await api.asset(gm, room["id"])
    a, b = await api.ws(gm), await api.ws(alice)
    await a.request("join", room_id=room["id"])
    jb = await b.request("join", room_id=room["id"])
    await a.next_event("player.joined")
    add = await a.request("token.add", room_id=room["id"], asset_id=asset["id"], x=0, y=0)
    last = (await b.next_event("token.added"))["version"]
    await b.close()
    left = await a.next_event("player.left")
    assert left["user"]["id"] == alice.id

    acks = [await a.request("token.move", room_id=room["id"], token_id=add["token"]["id"], x=i, y=i) for i in range(5)]
    await a.request("chat.send", room_id=room["id"], text="while you were away")

    b2 = await api.ws(alice)
    back = await b2.request("join", room_id=room["id"], since=last)
    assert "snapshot" not in back
    got = [(e["type"], e["version"]) for e in back["events"]]
    # Missed: player.left, 5 moves, the chat; then this socket's own player.joined comes after.
    assert got[0] == ("player.left", left["version"])
    assert [t for t, _ in got[1:6]] == ["token.moved"] * 5 and got[6][0] == "chat.message"
    assert [v for _, v in got] == list(range(last + 1, last + 1 + len(got)))
    assert got[-1][1] == back["version"] or got[-1][1] == back["version"] - 1
    assert acks[-1]["version"] == got[5][1]
    assert jb["version"] < last

    # A `since` beyond the history (or from another server) falls back to a snapshot.
    b3 = await api.ws(alice)
    old = await b3.request("join", room_id=room["id"], since=10_000)
    assert "snapshot" in old and old["snapshot"]["tokens"][0]["x"] == 4
    for s in (a, b2, b3):
        await s.close()


async def _gm_token_and_a_player(api: Api) -> tuple[Player, dict[str, Any], Ws, Ws, str]:
    """A room with a GM (socket `a`) who added a token, and a player (socket `b`) who saw it added."""
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    asset = await api.asset(gm, room["id"])
    a, b = await api.ws(gm), await api.ws(alice)
    await a.request("join", room_id=room["id"])
    await b.request("join", room_id=room["id"])
    await a.next_event("player.joined")
    add = await a.request("token.add", room_id=room["id"], asset_id=asset["id"], x=0, y=0)
    await b.next_event("token.added")
    return gm, room, a, b, add["token"]["id"]


async def test_preview_moves_and_pointers_are_relayed_not_stored(api: Api) -> None:
    gm, room, a, b, token = await _gm_token_and_a_player(api)
    before = (await api.snapshot(gm, room["id"]))["room"]["version"]
    for i in range(5):
        await a.send("token.move", room_id=room["id"], token_id=token, x=i, y=i, preview=True)
    await a.send("pointer", room_id=room["id"], x=3, y=4)
    previews = [await b.next_event() for _ in range(6)]
    assert [p["type"] for p in previews] == ["token.moving"] * 5 + ["pointer"]
    assert all("version" not in p for p in previews) and previews[4]["x"] == 4
    assert previews[5]["user_id"] == gm.id
    snap = await api.snapshot(gm, room["id"])
    assert snap["room"]["version"] == before and snap["tokens"][0]["x"] == 0
    await a.close()
    await b.close()


async def test_a_drag_frame_after_a_committed_move_reaches_the_others_after_it(api: Api) -> None:
    """Previews are handled as they arrive, but never ahead of a message of the same socket still
    being handled: nobody sees a drag's frame before the committed move sent before it."""
    _, room, a, b, token = await _gm_token_and_a_player(api)
    await a.send("token.move", room_id=room["id"], token_id=token, x=1, y=1, preview=True)
    assert (await b.next_event())["type"] == "token.moving"  # the room's token index is warm
    for i in range(20):
        await a.send("token.move", room_id=room["id"], token_id=token, x=100 + i, y=0)
        await asyncio.sleep(0.005)  # the pace of a drag (a frame per display refresh), while the move is written
        await a.send("token.move", room_id=room["id"], token_id=token, x=200 + i, y=0, preview=True)
    seen = [await b.next_event() for _ in range(40)]
    assert [(e["type"], e["x"]) for e in seen] == [
        pair for i in range(20) for pair in (("token.moved", 100 + i), ("token.moving", 200 + i))]
    await a.close()
    await b.close()


async def test_presence_on_drop_and_room_close(api: Api) -> None:
    gm, alice, room, a, b = await api.table()
    online = (await api.http.get(f"/api/rooms/{room['id']}/players", params={"online": "true"},
                                 headers=gm.headers)).json()["players"]
    assert {p["user"]["id"] for p in online} == {gm.id, alice.id}
    b.sock.transport.abort()  # the socket drops without a word
    left = await a.next_event("player.left")
    assert left["user"]["id"] == alice.id
    players = (await api.http.get(f"/api/rooms/{room['id']}/players", headers=gm.headers)).json()["players"]
    assert {p["user"]["id"]: p["is_online"] for p in players} == {gm.id: True, alice.id: False}

    b2 = await api.ws(alice)
    await b2.request("join", room_id=room["id"])
    await a.next_event("player.joined")
    assert (await api.http.delete(f"/api/rooms/{room['id']}", headers=gm.headers)).status_code == 204
    closed = await asyncio.gather(a.next_event("room.closed"), b2.next_event("room.closed"))
    assert all(c["room_id"] == room["id"] for c in closed)
    refused = await b2.request("chat.send", room_id=room["id"], text="anyone?")
    assert refused["type"] == "error" and refused["code"] == "not_joined"
    rejoin = await b2.request("join", room_id=room["id"])
    assert rejoin["type"] == "error" and rejoin["code"] == "room_closed"
    await a.close()
    await b2.close()


async def test_same_user_in_two_tabs(api: Api) -> None:
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    a, t1, t2 = await api.ws(gm), await api.ws(alice), await api.ws(alice)
    await a.request("join", room_id=room["id"])
    await t1.request("join", room_id=room["id"])
    await a.next_event("player.joined")
    await t2.request("join", room_id=room["id"])
    said = await t1.request("chat.send", room_id=room["id"], text="from tab one")
    other_tab = await t2.next_event("chat.message")
    assert other_tab["version"] == said["version"], "the user's other tab gets the event"
    await t1.close()
    await t2.close()
    left = await a.next_event("player.left")
    assert left["user"]["id"] == alice.id

    async def alice_offline() -> bool:
        r = await api.http.get(f"/api/rooms/{room['id']}/players", params={"online": "true"}, headers=gm.headers)
        return alice.id not in {p["user"]["id"] for p in r.json()["players"]}

    await eventually(alice_offline, what="both tabs' disconnects handled")
    # Closing tab one stored nothing (tab two was still there): the only change after the chat is the
    # one player.left, when the last tab closed.
    assert left["version"] == said["version"] + 1 == (await api.snapshot(gm, room["id"]))["room"]["version"]
    await a.close()

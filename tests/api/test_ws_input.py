"""Bad input on the socket is refused before anything is done, with a clear code, the same on both
backends, and the socket lives on: huge numbers and ids, deep nesting, NUL characters, and preview
moves of tokens the sender may not move."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.client import Api, Ws

NOWHERE = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
async def table(api: Api) -> Any:
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    asset = await api.asset(gm, room["id"])
    gm_ws, ws = await api.ws(gm), await api.ws(alice)
    await gm_ws.request("join", room_id=room["id"])
    token = (await gm_ws.request("token.add", room_id=room["id"], asset_id=asset["id"], x=5, y=5))["token"]
    await ws.request("join", room_id=room["id"])
    yield {"gm": gm, "alice": alice, "room": room, "asset": asset, "token": token, "ws": ws, "gm_ws": gm_ws}
    await ws.close()
    await gm_ws.close()


async def _answer(ws: Ws, frame: str | bytes) -> dict[str, Any]:
    """Send a raw frame, then a ping: return the one reply that came before the pong."""
    await ws.send_raw(frame)
    pong = await ws.request("ping")
    assert pong["type"] == "pong", "the socket lives on"
    replies = []
    for msg in await _drain(ws):  # events stay queued, in order, for the test to look at
        if msg.get("type") in ("error", "ack"):
            replies.append(msg)
        else:
            ws.events.put_nowait(msg)
    assert len(replies) == 1, replies
    return replies[0]


async def _drain(ws: Ws) -> list[dict[str, Any]]:
    out = []
    while not ws.events.empty():
        out.append(ws.events.get_nowait())
    return out


async def _stored(api: Api, table: dict[str, Any]) -> dict[str, Any]:
    snap = await api.snapshot(table["gm"], table["room"]["id"])
    return {"version": snap["room"]["version"], "tokens": snap["tokens"], "messages": snap["messages"]}


async def test_numbers_beyond_their_range_are_refused_with_the_id_echoed(api: Api, table: dict[str, Any]) -> None:
    ws, room, token = table["ws"], table["room"]["id"], table["token"]
    before = await _stored(api, table)
    for label, fields in [
        ("since 2^63", {"type": "join", "room_id": room, "since": 2**63}),
        ("since 2^64", {"type": "join", "room_id": room, "since": 2**64}),
        ("if_version 2^63", {"type": "token.move", "room_id": room, "token_id": token["id"], "x": 1, "y": 1,
                             "if_version": 2**63}),
        ("if_version 10^30 on remove", {"type": "token.remove", "room_id": room, "token_id": token["id"],
                                        "if_version": 10**30}),
        ("x beyond a double", {"type": "pointer", "room_id": room, "x": 10**400, "y": 1}),
        ("z_index 2^70", {"type": "token.update", "room_id": room, "token_id": token["id"], "z_index": 2**70}),
    ]:
        reply = await _answer(ws, json.dumps({**fields, "id": label}))
        assert (reply["type"], reply["code"], reply["id"]) == ("error", "invalid_message", label), reply
        assert reply["message"]
    assert await _stored(api, table) == before
    # The largest version is fine: a join far in the future gets the snapshot.
    ok = await ws.request("join", room_id=room, since=2**63 - 1)
    assert ok["type"] == "ack" and "snapshot" in ok


async def test_ids_out_of_range_are_refused_and_nothing_is_stored(api: Api, table: dict[str, Any]) -> None:
    ws, room = table["ws"], table["room"]["id"]
    before = await _stored(api, table)
    for bad_id in (2**64, 2**53, -(2**53), "x" * 65, 1.5, True, [1], {"a": 1}):
        reply = await _answer(ws, json.dumps({"type": "chat.send", "id": bad_id, "room_id": room, "text": "hi"}))
        assert (reply["type"], reply["code"], reply["id"]) == ("error", "invalid_message", None), (bad_id, reply)
        assert "id" in reply["message"]
    assert await _stored(api, table) == before, "a chat.send with a bad id is not stored"
    # The bounds themselves are ids like any other.
    for good_id in (2**53 - 1, -(2**53 - 1), "x" * 64):
        reply = await _answer(ws, json.dumps({"type": "chat.send", "id": good_id, "room_id": room, "text": "ok"}))
        assert (reply["type"], reply["id"]) == ("ack", good_id), reply
        assert reply["message"]["text"] == "ok"


async def test_deep_nesting_is_refused_and_the_socket_lives_on(api: Api, table: dict[str, Any]) -> None:
    ws, room = table["ws"], table["room"]["id"]
    before = await _stored(api, table)
    deep = "[" * 1000 + "]" * 1000  # 2 KB
    objects = '{"a":' * 40 + "1" + "}" * 40
    frames: list[str | bytes] = [
        deep,
        f'{{"type":"chat.send","id":1,"room_id":"{room}","text":"hi","x":{deep}}}',
        f'{{"x":{deep},"type":"ping","id":2}}',
        f'{{"type":"ping","id":3,"a":{objects}}}',
        b'{"type":"ping","id":4,"x":' + b"[" * 30000 + b"]" * 30000 + b"}",
    ]
    for frame in frames:
        reply = await _answer(ws, frame)
        assert (reply["type"], reply["code"], reply["id"]) == ("error", "too_deep", None), reply
    # Nesting within the limit is ignored like any unknown field.
    nested = "[" * 30 + "]" * 30
    shallow = await _answer(ws, f'{{"type":"chat.send","id":"s","room_id":"{room}","text":"fine","x":{nested}}}')
    assert (shallow["type"], shallow["id"]) == ("ack", "s")
    after = await _stored(api, table)
    assert after["messages"][-1]["text"] == "fine" and after["messages"][:-1] == before["messages"]


async def test_nul_characters_are_refused_as_invalid_text(api: Api, table: dict[str, Any]) -> None:
    ws, room, token = table["ws"], table["room"]["id"], table["token"]
    before = await _stored(api, table)
    for label, fields in [
        ("chat", {"type": "chat.send", "room_id": room, "text": "hi\x00there"}),
        ("dice", {"type": "dice.roll", "room_id": room, "notation": "1d6\x00"}),
        ("room id", {"type": "chat.send", "room_id": room + "\x00", "text": "hi"}),
        ("token id", {"type": "token.move", "room_id": room, "token_id": "\x00" + token["id"], "x": 1, "y": 1}),
        ("unknown field", {"type": "chat.send", "room_id": room, "text": "hi", "note": "a\x00"}),
        ("key", {"type": "chat.send", "room_id": room, "text": "hi", "k\x00": 1}),
        ("type", {"type": "chat.send\x00", "room_id": room, "text": "hi"}),
    ]:
        reply = await _answer(ws, json.dumps({**fields, "id": label}))
        assert (reply["type"], reply["code"], reply["id"]) == ("error", "invalid_text", label), reply
    nul_id = await _answer(ws, json.dumps({"type": "chat.send", "id": "a\x00", "room_id": room, "text": "hi"}))
    assert (nul_id["code"], nul_id["id"]) == ("invalid_text", None), "an id with a NUL is not echoed"
    # A backslash followed by `u0000` is text like any other.
    ok = await _answer(ws, json.dumps({"type": "chat.send", "id": "lit", "room_id": room, "text": "a\\u0000b"}))
    assert ok["type"] == "ack" and ok["message"]["text"] == "a\\u0000b"
    after = await _stored(api, table)
    assert after["messages"][:-1] == before["messages"] and after["tokens"] == before["tokens"]


async def test_preview_moves_are_checked_as_commits_are(api: Api, table: dict[str, Any]) -> None:
    ws, gm_ws, room, gm_token = table["ws"], table["gm_ws"], table["room"]["id"], table["token"]

    async def preview(sock: Ws, token_id: str, msg_id: str | None = None) -> None:
        fields = {"type": "token.move", "room_id": room, "token_id": token_id, "x": 7, "y": 8, "preview": True}
        await sock.send_raw(json.dumps({**fields, "id": msg_id} if msg_id else fields))

    # A player's preview of the GM's token, or of a token that does not exist: refused, not relayed.
    for token_id, code in ((gm_token["id"], "not_token_owner"), (NOWHERE, "token_not_found")):
        reply = await _answer(ws, json.dumps({"type": "token.move", "id": code, "room_id": room, "token_id": token_id,
                                              "x": 7, "y": 8, "preview": True}))
        assert (reply["type"], reply["code"], reply["id"]) == ("error", code, code), reply
    # Her own token (added after the index was loaded: it learns from the event) is relayed.
    asset = table["asset"]["id"]
    mine = (await ws.request("token.add", room_id=room, asset_id=asset, x=1, y=1))["token"]
    reply = await _answer(ws, json.dumps({"type": "token.move", "id": "own", "room_id": room, "token_id": mine["id"],
                                          "x": 3, "y": 4, "preview": True}))
    assert (reply["type"], reply["id"]) == ("ack", "own")
    moving = await gm_ws.next_event("token.moving")
    assert (moving["token_id"], moving["x"], moving["by"]) == (mine["id"], 3, table["alice"].id)
    # The GM previews any token; a token added by the GM after the load is still the GM's.
    other = (await gm_ws.request("token.add", room_id=room, asset_id=asset, x=2, y=2))["token"]
    await ws.next_event("token.added")
    assert (await _answer(gm_ws, json.dumps({"type": "token.move", "id": "g", "room_id": room,
                                             "token_id": mine["id"].upper(), "x": 5, "y": 5, "preview": True}))
            )["type"] == "ack"
    reply = await _answer(ws, json.dumps({"type": "token.move", "id": "o", "room_id": room, "token_id": other["id"],
                                          "x": 7, "y": 8, "preview": True}))
    assert reply["code"] == "not_token_owner"
    # Removed: nobody may preview it any more.
    await ws.request("token.remove", room_id=room, token_id=mine["id"])
    await gm_ws.next_event("token.removed")
    reply = await _answer(gm_ws, json.dumps({"type": "token.move", "id": "r", "room_id": room,
                                             "token_id": mine["id"], "x": 7, "y": 8, "preview": True}))
    assert reply["code"] == "token_not_found"
    # Previews without an id (what a drag sends): the first refusal is explained, most are not.
    for _ in range(20):
        await preview(ws, gm_token["id"])
    assert (await ws.request("ping"))["type"] == "pong"
    refusals = [m for m in await _drain(ws) if m.get("type") == "error"]
    assert 1 <= len(refusals) < 20 and refusals[0]["code"] == "not_token_owner"
    # None of the refused previews reached the GM: only the two allowed ones were ever relayed.
    assert (await gm_ws.request("ping"))["type"] == "pong"
    assert not [e for e in await _drain(gm_ws) if e.get("type") == "token.moving"]


async def test_ids_in_any_case_or_without_dashes_mean_the_same_room(api: Api) -> None:
    """The protocol accepts UUIDs in any case, with or without dashes: on both backends they name the
    same room and token as the canonical form (the server stores and sends that one)."""
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    asset = await api.asset(gm, room["id"])
    gm_ws, ws = await api.ws(gm), await api.ws(alice)
    await gm_ws.request("join", room_id=room["id"])
    joined = await ws.request("join", room_id=room["id"].upper())
    assert (joined["type"], joined["room_id"]) == ("ack", room["id"])
    await gm_ws.request("chat.send", room_id=room["id"], text="hello")
    assert (await ws.next_event("chat.message"))["message"]["text"] == "hello"
    sent = await ws.request("chat.send", room_id=room["id"].replace("-", ""), text="hi")
    assert sent["type"] == "ack"
    heard = await gm_ws.next_event("chat.message")
    assert (heard["room_id"], heard["message"]["text"]) == (room["id"], "hi")
    token = (await ws.request("token.add", room_id=room["id"].upper(), asset_id=asset["id"].upper(), x=1, y=1))
    assert token["type"] == "ack" and token["token"]["asset_id"] == asset["id"]
    moved = await ws.request("token.move", room_id=room["id"], token_id=token["token"]["id"].upper(), x=2, y=2)
    assert moved["type"] == "ack"
    await ws.close()
    await gm_ws.close()

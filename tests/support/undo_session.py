"""Undo, scripted against one server (embedded) or two instances: the GM on one, the players and the
spectator on the other, and Alice's second socket on the GM's, so an undo is asked on another
instance than the one that made the change. What each audience receives of an inverse is checked,
and Bob's and the spectator's frames are scanned for the owners-only bar's label."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.client import Ws
from tests.support.hidden_session import Table, frame_at, seat

OWNERS_LABEL = "Stress (owners only)"
TEMPLATE: dict[str, Any] = {"token_defaults": {"bars": [
    {"key": "hp", "label": "HP (GM eyes)", "value": 12, "max": 12, "visibility": "gm"},
    {"key": "stress", "label": OWNERS_LABEL, "value": 0, "max": 6, "visibility": "owners"}]}}


def _system() -> dict[str, Any]:
    return {"name": f"Undo {uuid.uuid4().hex[:8]}", "description": "", "category": "test",
            "complexity": "beginner", "is_public": False, "template": TEMPLATE}


async def undo_session(gm_api: Any, player_api: Any) -> None:
    t = await seat(gm_api, player_api, _system())
    a2 = await Ws.connect(gm_api.ws_url, t.alice.token)  # Alice's other socket, on the GM's instance
    t.sockets.append(a2)
    try:
        ack = await a2.request("join", room_id=t.room_id)
        assert ack["type"] == "ack", ack
        await _play(t, a2)
    finally:
        await t.close()


def _undone(ack: dict[str, Any], etype: str, token_id: str) -> int:
    assert ack["type"] == "ack" and ack["undone"] == {"type": etype, "token_id": token_id}, ack
    return int(ack["version"])


async def _refused(ws: Ws, room_id: str, code: str) -> dict[str, Any]:
    err = await ws.request("undo", room_id=room_id)
    assert err["type"] == "error" and err["code"] == code, err
    return err


async def _play(t: Table, a2: Ws) -> None:
    rid, g, a, b, s = t.room_id, t.g, t.a, t.b, t.s
    asset = await t.gm_api.asset(t.gm, rid)

    # Nobody has changed anything yet; spectators may not undo at all.
    await _refused(b, rid, "nothing_to_undo")
    await _refused(s, rid, "spectator_read_only")

    added = await a.request("token.add", room_id=rid, asset_id=asset["id"], x=100, y=100)
    assert added["type"] == "ack", added
    tok = added["token"]["id"]

    # Undo a move, from Alice's socket on the other instance: everyone gets an ordinary token.moved,
    # both of Alice's sockets included (the ack does not carry the position).
    moved = await a.request("token.move", room_id=rid, token_id=tok, x=200, y=200)
    assert moved["type"] == "ack" and moved["token_version"] == 2, moved
    await a.request("chat.send", room_id=rid, text="chat is not undone")  # skipped by undo
    version = _undone(await a2.request("undo", room_id=rid), "token.moved", tok)
    for ws in (g, a, b, s, a2):
        got = await frame_at(ws, version)
        assert (got["type"], got["token_id"], got["x"], got["y"], got["token_version"], got["by"]) == (
            "token.moved", tok, 100.0, 100.0, 3, t.alice.id), got
    assert next(x for x in (await t.player_api.snapshot(t.bob, rid))["tokens"] if x["id"] == tok)["x"] == 100.0

    # Undo twice: two moves back, then the addition itself (undone as a removal); then nothing is left.
    for x in (300, 400):
        assert (await a.request("token.move", room_id=rid, token_id=tok, x=x, y=x))["type"] == "ack"
    version = _undone(await a.request("undo", room_id=rid), "token.moved", tok)
    assert ((await frame_at(b, version))["x"], (await frame_at(b, version))["token_version"]) == (300.0, 6)
    version = _undone(await a2.request("undo", room_id=rid), "token.moved", tok)
    assert ((await frame_at(g, version))["x"], (await frame_at(g, version))["token_version"]) == (100.0, 7)
    version = _undone(await a.request("undo", room_id=rid), "token.added", tok)
    for ws in (g, b, s):
        assert await frame_at(ws, version) == {"type": "token.removed", "room_id": rid, "version": version,
                                               "ts": (await frame_at(ws, version))["ts"], "by": t.alice.id,
                                               "token_id": tok}
    await _refused(a2, rid, "nothing_to_undo")

    # A conflict: the GM moved Alice's token after her; the entry is dropped and the next undo goes
    # to her change before it.
    first = (await a.request("token.add", room_id=rid, asset_id=asset["id"], x=10, y=10))["token"]["id"]
    second = (await a.request("token.add", room_id=rid, asset_id=asset["id"], x=20, y=20))["token"]["id"]
    assert (await a.request("token.move", room_id=rid, token_id=first, x=11, y=11))["type"] == "ack"
    assert (await a.request("token.move", room_id=rid, token_id=second, x=21, y=21))["type"] == "ack"
    gm_move = await g.request("token.move", room_id=rid, token_id=second, x=50, y=50)
    assert gm_move["type"] == "ack", gm_move
    err = await _refused(a2, rid, "undo_conflict")
    assert err["details"] == {"token_id": second, "token_version": gm_move["token_version"]}, err
    assert "someone else" in err["message"], err
    version = _undone(await a.request("undo", room_id=rid), "token.moved", first)
    assert (await frame_at(b, version))["x"] == 10.0 and version == gm_move["version"] + 1, "a refusal stores nothing"

    # A bar only owners see: the inverse reaches each audience with its copy, Bob without the bar.
    bars = await a.request("token.bar", room_id=rid, token_id=first, key="stress", value=4)
    assert bars["type"] == "ack", bars
    version = _undone(await a2.request("undo", room_id=rid), "token.bar_changed", first)
    gm_copy, bob_copy, mine = (await frame_at(g, version), await frame_at(b, version), await frame_at(a, version))
    assert gm_copy["type"] == "token.bar_changed" and gm_copy["bar"]["value"] == 0, gm_copy
    assert mine["bar"] == gm_copy["bar"], mine
    assert "bar" not in bob_copy and bob_copy["token_version"] == gm_copy["token_version"], bob_copy
    # The GM's change of the GM-only bar, undone: Alice (the owner) gets the version, not the bar.
    hp = await g.request("token.bar", room_id=rid, token_id=first, key="hp", value=3)
    assert hp["type"] == "ack", hp
    version = _undone(await g.request("undo", room_id=rid), "token.bar_changed", first)
    assert (await frame_at(g, version))["bar"]["value"] == 12
    assert "bar" not in await frame_at(a, version) and "bar" not in await frame_at(b, version)

    # Conditions and a removal: undone as token.conditions_changed and token.added (the same id).
    cond = await a.request("token.condition", room_id=rid, token_id=first, add=["prone"])
    assert cond["type"] == "ack" and cond["token"]["conditions"] == ["prone"], cond
    version = _undone(await a.request("undo", room_id=rid), "token.conditions_changed", first)
    assert (await frame_at(b, version))["conditions"] == []
    updated = await a.request("token.update", room_id=rid, token_id=first, name="Renamed", rotation=45)
    assert updated["type"] == "ack" and updated["token"]["name"] == "Renamed", updated
    version = _undone(await a.request("undo", room_id=rid), "token.updated", first)
    assert ((await frame_at(b, version))["token"]["name"], (await frame_at(b, version))["token"]["rotation"]) == (
        "", 0.0)
    removed = await a.request("token.remove", room_id=rid, token_id=first)
    assert removed["type"] == "ack", removed
    version = _undone(await a2.request("undo", room_id=rid), "token.removed", first)
    back = (await frame_at(b, version))["token"]
    assert (back["id"], back["x"], back["owner_id"]) == (first, 10.0, t.alice.id), back
    assert [bar["key"] for bar in back["bars"]] == [], "Bob's copy carries no bar he may not see"
    assert [bar["key"] for bar in (await frame_at(g, version))["token"]["bars"]] == ["hp", "stress"]
    assert [bar["key"] for bar in (await frame_at(a, version))["token"]["bars"]] == ["stress"]

    # A token Alice can no longer see: the same answer as for a move of it, never a conflict that
    # would tell its version; the entry goes.
    assert (await a.request("token.move", room_id=rid, token_id=first, x=30, y=30))["type"] == "ack"
    hidden = await g.request("token.update", room_id=rid, token_id=first, hidden=True)
    assert hidden["type"] == "ack", hidden
    err = await _refused(a, rid, "token_not_found")
    assert "details" not in err or not err["details"], err

    for ws in (b, s):
        assert not any(OWNERS_LABEL in raw for raw in ws.raw), "the owners-only bar reached someone else"

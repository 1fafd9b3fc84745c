"""The turn order, scripted against one server (embedded) or two instances (the GM on one, the
players on the other): rolled with the game system's formula, sorted by its order, turns taken by
the GM and by players ending their own turn, and a hidden monster's entry that reaches GMs only."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.hidden_session import Table, frame_at, seat

SYSTEM = {"name": f"Init {uuid.uuid4().hex[:8]}", "description": "", "category": "test", "complexity": "beginner",
          "is_public": False, "template": {"initiative": {"formula": "1d6+100", "order": "ascending"}}}


def _tokens(tracker: dict[str, Any]) -> list[str]:
    return [e["token_id"] for e in tracker["entries"]]


def _current(tracker: dict[str, Any]) -> str | None:
    return next((e["token_id"] for e in tracker["entries"] if e["id"] == tracker["current"]), None)


async def initiative_session(gm_api: Any, player_api: Any) -> None:
    t = await seat(gm_api, player_api, SYSTEM | {"name": f"Init {uuid.uuid4().hex[:8]}"})
    try:
        await _play(t)
    finally:
        await t.close()


async def _ok(ws: Any, **fields: Any) -> dict[str, Any]:
    ack = await ws.request("initiative", **fields)
    assert ack["type"] == "ack", ack
    return ack


async def _refused(ws: Any, code: str, **fields: Any) -> None:
    got = await ws.request("initiative", **fields)
    assert got["type"] == "error" and got["code"] == code, got


async def _play(t: Table) -> None:
    asset = await t.gm_api.asset(t.gm, t.room_id)
    g, a, b, room = t.g, t.a, t.b, t.room_id

    async def token(ws: Any, **extra: Any) -> str:
        ack = await ws.request("token.add", room_id=room, asset_id=asset["id"], x=10, y=10, **extra)
        assert ack["type"] == "ack", ack
        return str(ack["token"]["id"])

    alia, bo, monster = await token(a), await token(b), await token(g, hidden=True)
    rolled = await _ok(a, room_id=room, op="add", token_id=alia)
    assert _tokens(rolled["initiative"]) == [alia] and 101 <= rolled["initiative"]["entries"][0]["value"] <= 106
    got = await frame_at(g, rolled["version"])
    assert got["type"] == "initiative.changed" and got["rolled"]["notation"] == "1d6+100", got
    assert got["rolled"]["total"] == rolled["initiative"]["entries"][0]["value"]
    await _ok(b, room_id=room, op="add", token_id=bo, value=3)
    hidden = await _ok(g, room_id=room, op="add", token_id=monster, value=50)
    assert _tokens(hidden["initiative"]) == [alia, bo, monster]
    for ws in t.watchers:
        got = await frame_at(ws, hidden["version"])
        assert got["type"] == "initiative.changed" and _tokens(got["initiative"]) == [alia, bo], got
    await _refused(b, "token_not_found", room_id=room, op="add", token_id=monster, value=1)
    await _refused(b, "not_token_owner", room_id=room, op="add", token_id=alia, value=1)
    await _refused(b, "not_gm", room_id=room, op="sort")
    await _refused(t.s, "spectator_read_only", room_id=room, op="next")

    ordered = await _ok(g, room_id=room, op="sort")
    assert _tokens(ordered["initiative"]) == [bo, monster, alia], "ascending, as the system says"
    assert _tokens((await frame_at(a, ordered["version"]))["initiative"]) == [bo, alia]
    first = await _ok(g, room_id=room, op="next")
    assert _current(first["initiative"]) == bo and first["initiative"]["round"] == 1
    await _refused(a, "not_token_owner", room_id=room, op="next")  # not Alia's turn
    ended = await _ok(b, room_id=room, op="next")  # Bo ends his own turn: the monster acts
    assert ended["initiative"]["current"] is None, "players do not see whose hidden turn it is"
    assert _current((await frame_at(g, ended["version"]))["initiative"]) == monster
    version = ended["initiative"]["version"]
    await _refused(g, "conflict", room_id=room, op="next", if_version=version - 1)
    step = await _ok(g, room_id=room, op="next", if_version=version)
    assert _current(step["initiative"]) == alia
    wrap = await _ok(g, room_id=room, op="next")
    assert (_current(wrap["initiative"]), wrap["initiative"]["round"]) == (bo, 2)
    back = await _ok(g, room_id=room, op="prev")
    assert (_current(back["initiative"]), back["initiative"]["round"]) == (alia, 1)
    jump = await _ok(g, room_id=room, op="next_round")
    assert (_current(jump["initiative"]), jump["initiative"]["round"]) == (bo, 2)

    # The current turn is part of the snapshot, as each caller may see it.
    mine = (await t.player_api.snapshot(t.alice, room))["initiative"]
    assert (_tokens(mine), _current(mine), mine["round"]) == ([bo, alia], bo, 2)
    assert _tokens((await t.gm_api.snapshot(t.gm, room))["initiative"]) == [bo, monster, alia]

    entry = next(e["id"] for e in mine["entries"] if e["token_id"] == alia)
    await _refused(b, "not_token_owner", room_id=room, op="remove", entry_id=entry)
    gone = await _ok(a, room_id=room, op="remove", entry_id=entry)
    assert _tokens(gone["initiative"]) == [bo]
    monster_entry = next(e["id"] for e in (await t.gm_api.snapshot(t.gm, room))["initiative"]["entries"]
                         if e["token_id"] == monster)
    await _refused(a, "entry_not_found", room_id=room, op="remove", entry_id=monster_entry)
    cleared = await _ok(g, room_id=room, op="clear")
    assert cleared["initiative"]["entries"] == [] and cleared["initiative"]["round"] == 1
    await _refused(g, "initiative_empty", room_id=room, op="next")

    for ws in (a, b, t.s):
        for raw in ws.raw:
            assert monster not in raw and monster_entry not in raw, raw[:300]

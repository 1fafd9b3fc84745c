"""Tokens as characters, scripted against one server (embedded) or two instances (the GM on one, the
players on the other): bars from the game system's token_defaults, `token.bar`, `token.condition`,
and each field's visibility (everyone / owners / gm) in live events, acks, snapshots and `join {since}`.
Alice's and Bob's frames are scanned for the GM-only bar's label, which must never reach them."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.client import Api, Ws
from tests.support.hidden_session import frame_at, seat

SECRET_LABEL = "Hit Points (GM eyes)"
TEMPLATE: dict[str, Any] = {
    "token_defaults": {"size": 2, "bars": [
        {"key": "hp", "label": SECRET_LABEL, "value": 12, "max": 12, "color": "#aa2222", "visibility": "gm"},
        {"key": "stress", "label": "Stress", "value": 0, "max": 6, "visibility": "owners"},
        {"key": "armor", "label": "Armor", "value": 3, "visibility": "everyone"}]},
    "conditions": ["prone", "poisoned"],
}


def _keys(token: dict[str, Any]) -> list[str]:
    return [b["key"] for b in token["bars"]]


def _system() -> dict[str, Any]:
    return {"name": f"Chars {uuid.uuid4().hex[:8]}", "description": "", "category": "test",
            "complexity": "beginner", "is_public": False, "template": TEMPLATE}


async def character_session(gm_api: Api, player_api: Api) -> None:
    t = await seat(gm_api, player_api, _system())
    try:
        await _play(t)
    finally:
        await t.close()


async def _play(t: Any) -> None:
    asset = await t.gm_api.asset(t.gm, t.room_id)
    g, a, b = t.g, t.a, t.b

    # Alice's token takes size and bars from the system; each audience gets its copy.
    ack = await a.request("token.add", room_id=t.room_id, asset_id=asset["id"], x=100, y=100, name="Alia")
    assert ack["type"] == "ack", ack
    mine = ack["token"]
    token_id = mine["id"]
    assert mine["size"] == 2.0 and mine["name"] == "Alia"
    assert _keys(mine) == ["stress", "armor"], "the owner sees owners' and everyone's bars"
    assert mine["bars"][0] == {"key": "stress", "label": "Stress", "value": 0, "max": 6, "color": "#3366cc",
                               "visibility": "owners"}
    for ws, keys in ((g, ["hp", "stress", "armor"]), (b, ["armor"])):
        got = await frame_at(ws, ack["version"])
        assert got["type"] == "token.added" and _keys(got["token"]) == keys, got
    assert (await frame_at(t.s, ack["version"]))["token"]["bars"] == [
        {"key": "armor", "label": "Armor", "value": 3, "max": None, "color": "#33aa55", "visibility": "everyone"}]

    # The GM lowers the hidden HP: a small event; players get its version without the bar.
    hp = await g.request("token.bar", room_id=t.room_id, token_id=token_id, key="hp", value=5, if_version=1)
    assert hp["type"] == "ack" and hp["token"]["bars"][0]["value"] == 5 and hp["token"]["version"] == 2, hp
    for ws in (a, b, t.s):
        assert await frame_at(ws, hp["version"]) == {
            "type": "token.bar_changed", "room_id": t.room_id, "version": hp["version"],
            "ts": (await frame_at(ws, hp["version"]))["ts"], "by": t.gm.user["id"], "token_id": token_id,
            "token_version": 2}

    # Alice changes her own stress (owners): the GM and Alice see it, Bob gets the version only.
    stress = await a.request("token.bar", room_id=t.room_id, token_id=token_id, key="stress", value=3, max=8,
                             if_version=2)
    assert stress["type"] == "ack", stress
    assert [(x["key"], x["value"], x["max"]) for x in stress["token"]["bars"]] == [("stress", 3, 8), ("armor", 3, None)]
    seen_by_gm = await frame_at(g, stress["version"])
    assert seen_by_gm["bar"] == {"key": "stress", "label": "Stress", "value": 3, "max": 8, "color": "#3366cc",
                                 "visibility": "owners"} and seen_by_gm["token_version"] == 3
    assert "bar" not in (await frame_at(b, stress["version"])) and (await frame_at(b, stress["version"]))[
        "token_version"] == 3

    # Refusals: a stale version, a bar the owner may not see, someone else's token, a bad value.
    stale = await a.request("token.bar", room_id=t.room_id, token_id=token_id, key="stress", value=1, if_version=2)
    assert stale["type"] == "error" and stale["code"] == "conflict", stale
    hidden_bar = await a.request("token.bar", room_id=t.room_id, token_id=token_id, key="hp", value=99)
    assert hidden_bar["type"] == "error" and hidden_bar["code"] == "bar_not_found", hidden_bar
    not_mine = await b.request("token.bar", room_id=t.room_id, token_id=token_id, key="armor", value=0)
    assert not_mine["type"] == "error" and not_mine["code"] == "not_token_owner", not_mine
    too_big = await g.request("token.bar", room_id=t.room_id, token_id=token_id, key="hp", value=10**7)
    assert too_big["type"] == "error" and too_big["code"] == "invalid_message", too_big
    nothing = await g.request("token.bar", room_id=t.room_id, token_id=token_id, key="hp")
    assert nothing["type"] == "error" and nothing["code"] == "nothing_to_change", nothing
    player_bars = await a.request("token.update", room_id=t.room_id, token_id=token_id,
                                  bars=[{"key": "hp", "label": "HP"}])
    assert player_bars["type"] == "error" and player_bars["code"] == "not_gm", player_bars

    # Conditions (everyone): added and removed regardless of case, free text within limits.
    cond = await a.request("token.condition", room_id=t.room_id, token_id=token_id, add=["Prone", "on fire"])
    assert cond["type"] == "ack" and cond["token"]["conditions"] == ["Prone", "on fire"], cond
    got = await frame_at(b, cond["version"])
    assert got["type"] == "token.conditions_changed" and got["conditions"] == ["Prone", "on fire"], got
    cond = await g.request("token.condition", room_id=t.room_id, token_id=token_id, remove=["prone"], add=["PRONE"],
                           if_version=4)
    assert cond["type"] == "ack" and cond["token"]["conditions"] == ["on fire", "PRONE"], cond
    long = await a.request("token.condition", room_id=t.room_id, token_id=token_id, add=["x" * 33])
    assert long["type"] == "error" and long["code"] == "invalid_message", long

    # The GM hides the conditions from everyone but GMs: players get a blank list; the owner can no longer change them.
    upd = await g.request("token.update", room_id=t.room_id, token_id=token_id, conditions_visibility="gm",
                          name_visibility="owners")
    assert upd["type"] == "ack" and upd["token"]["conditions"] == ["on fire", "PRONE"], upd
    for_alice = await frame_at(a, upd["version"])
    assert for_alice["token"]["name"] == "Alia" and for_alice["token"]["conditions"] == [], for_alice
    assert for_alice["token"]["visibility"] == {"name": "owners"}
    for_bob = await frame_at(b, upd["version"])
    assert for_bob["token"]["name"] == "" and for_bob["token"]["conditions"] == [], for_bob
    assert _keys(for_bob["token"]) == ["armor"] and _keys(for_alice["token"]) == ["stress", "armor"]
    refused = await a.request("token.condition", room_id=t.room_id, token_id=token_id, add=["hasted"])
    assert refused["type"] == "error" and refused["code"] == "not_gm", refused
    hidden_cond = await g.request("token.condition", room_id=t.room_id, token_id=token_id, add=["charmed"])
    assert "conditions" not in (await frame_at(b, hidden_cond["version"]))
    assert (await frame_at(b, hidden_cond["version"]))["token_version"] == hidden_cond["token"]["version"]

    # Snapshots: each caller's copy.
    for who, api, keys, name, conditions in (
            (t.gm, t.gm_api, ["hp", "stress", "armor"], "Alia", ["on fire", "PRONE", "charmed"]),
            (t.alice, t.player_api, ["stress", "armor"], "Alia", []),
            (t.bob, t.player_api, ["armor"], "", [])):
        token = next(x for x in (await api.snapshot(who, t.room_id))["tokens"] if x["id"] == token_id)
        assert (_keys(token), token["name"], token["conditions"]) == (keys, name, conditions), who.user["username"]
    hp_bar = next(x for x in (await t.gm_api.snapshot(t.gm, t.room_id))["tokens"] if x["id"] == token_id)["bars"][0]
    assert hp_bar["value"] == 5

    # `join {since}` gives Bob what he would have got live.
    bob2 = await Ws.connect(t.player_api.ws_url, t.bob.token)
    t.sockets.append(bob2)
    rejoin = await bob2.request("join", room_id=t.room_id, since=ack["version"] - 1)
    assert rejoin["type"] == "ack" and rejoin["events"][0]["type"] == "token.added", rejoin
    assert _keys(rejoin["events"][0]["token"]) == ["armor"]

    # Nothing GM-only ever reached a player or the spectator.
    for ws in (a, b, t.s, bob2):
        for raw in ws.raw:
            assert SECRET_LABEL not in raw and "charmed" not in raw, raw[:300]
            assert '"value":5' not in raw or '"key":"hp"' not in raw, raw[:300]
    for ws in (b, t.s, bob2):
        for raw in ws.raw:
            assert '"Stress"' not in raw, raw[:300]

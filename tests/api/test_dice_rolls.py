"""Rolling the play-tools dice forms over the socket, on every backend (the `api` fixture runs the
embedded server on SQLite and on PostgreSQL): what the roller's ack, the other players' event, the
room snapshot and a reconnect's catch-up each carry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.client import Api, Player, Ws


@pytest.fixture
async def table(api: Api) -> AsyncIterator[dict[str, Any]]:
    gm, alice, room, a, b = await api.table()
    yield {"gm": gm, "alice": alice, "room": room, "a": a, "b": b}
    await a.close()
    await b.close()


async def _roll(t: dict[str, Any], notation: str, **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Alice rolls; returns her ack and the event the GM saw (which must carry the same roll)."""
    b: Ws = t["b"]
    a: Ws = t["a"]
    ack = await b.request("dice.roll", room_id=t["room"]["id"], notation=notation, **extra)
    assert ack["type"] == "ack", ack
    seen = await a.next_event("dice.rolled")
    assert seen["version"] == ack["version"] and seen["by"] == t["alice"].id
    alice: Player = t["alice"]
    assert seen["roll"] == ack["roll"], "the table sees what the roller was told"
    assert (seen["roll"]["user_id"], seen["roll"]["username"]) == (alice.id, alice.user["username"])
    return ack, seen["roll"]


def _dice(term: dict[str, Any]) -> list[int]:
    return [d["value"] for d in term["results"]]


async def test_a_labelled_roll_reaches_the_table_and_the_snapshot(api: Api, table: dict[str, Any]) -> None:
    ack, roll = await _roll(table, "1d20+5 stealth")
    assert roll["notation"] == "1d20+5" and roll["label"] == "stealth"
    (d20,) = _dice(roll["terms"][0])
    assert 1 <= d20 <= 20 and roll["total"] == d20 + 5 == roll["totals"][0]
    assert roll["rolls"] == [[d20]] and roll["kept"] == [[d20]] and roll["modifier"] == 5, "v1 fields kept"
    snap = await api.snapshot(table["gm"], table["room"]["id"])
    last = snap["messages"][-1]
    assert last["kind"] == "roll" and last["version"] == ack["version"]
    assert last["text"] == f"stealth: 1d20+5 = {d20 + 5}"
    assert last["roll"]["label"] == "stealth" and last["roll"]["terms"] == roll["terms"]


async def test_label_field_and_the_typed_label_are_one_or_the_other(table: dict[str, Any]) -> None:
    _, roll = await _roll(table, "6d6>=5", label="Small pool")
    assert roll["label"] == "Small pool" and roll["notation"] == "6d6>=5"
    reply = await table["b"].request("dice.roll", room_id=table["room"]["id"], notation="1d20 stealth",
                                     label="stealth")
    assert reply["type"] == "error" and reply["code"] == "bad_dice" and "given twice" in reply["message"]
    too_long = await table["b"].request("dice.roll", room_id=table["room"]["id"], notation="1d20", label="x" * 101)
    assert too_long["type"] == "error" and too_long["code"] == "invalid_message"


async def test_every_new_form_shows_each_die(table: dict[str, Any]) -> None:
    _, roll = await _roll(table, "3d6!")
    term = roll["terms"][0]
    values = _dice(term)
    assert len(values) == 3 + sum(1 for d in term["results"] if d.get("extra"))
    assert all(bool(d.get("exploded")) == (d["value"] == 6) for d in term["results"])
    assert roll["total"] == sum(values)

    _, roll = await _roll(table, "6d6>=5")
    term = roll["terms"][0]
    hits = [d["value"] for d in term["results"] if d.get("success")]
    assert all(v >= 5 for v in hits) and len(hits) == term["successes"] == roll["total"]
    assert len(_dice(term)) == 6

    _, roll = await _roll(table, "10d10cs>=7")
    assert roll["notation"] == "10d10>=7"
    assert roll["total"] == sum(1 for v in _dice(roll["terms"][0]) if v >= 7)

    _, roll = await _roll(table, "4dF")
    assert roll["terms"][0]["sides"] == "F"
    assert set(_dice(roll["terms"][0])) <= {-1, 0, 1} and roll["total"] == sum(_dice(roll["terms"][0]))

    _, roll = await _roll(table, "1d20+1d4+3")
    d20, d4 = _dice(roll["terms"][0]), _dice(roll["terms"][1])
    assert roll["total"] == d20[0] + d4[0] + 3 and roll["terms"][2] == {"set": 0, "constant": 3, "sign": 1}

    _, roll = await _roll(table, "4d6kh3")
    dropped = [d for d in roll["terms"][0]["results"] if d.get("dropped")]
    assert len(dropped) == 1 and dropped[0]["value"] == min(_dice(roll["terms"][0]))

    _, roll = await _roll(table, "3#1d20 attacks")
    assert (roll["notation"], roll["label"], roll["repeat"]) == ("3#1d20", "attacks", 3)
    assert [t["set"] for t in roll["terms"]] == [0, 1, 2]
    assert roll["totals"] == [_dice(t)[0] for t in roll["terms"]] and roll["total"] == sum(roll["totals"])


async def test_bad_notation_points_at_the_character_and_stores_nothing(api: Api, table: dict[str, Any]) -> None:
    before = (await api.snapshot(table["gm"], table["room"]["id"]))["room"]["version"]
    for notation, position in [("1d20 kh1", 6), ("1d6!>=1", 4), ("4dF!", 4), ("21#1d6", 1), ("1d20+5stealth", 7)]:
        reply = await table["b"].request("dice.roll", room_id=table["room"]["id"], notation=notation)
        assert reply["type"] == "error" and reply["code"] == "bad_dice", (notation, reply)
        assert reply["details"] == {"position": position}, notation
    reply = await table["b"].request("dice.roll", room_id=table["room"]["id"], notation="3#50d6")
    assert reply["code"] == "bad_dice" and "150" in reply["message"]
    after = (await api.snapshot(table["gm"], table["room"]["id"]))["room"]["version"]
    assert after == before, "a refused roll is not stored"


async def test_the_largest_roll_is_bounded_and_replayed_whole(api: Api, table: dict[str, Any]) -> None:
    """A roll that explodes on 999 faces of 1000 adds at most MAX_EXTRA_DICE dice; a player who was
    away gets it from the event log, flags and all."""
    b: Ws = table["b"]
    last = (await b.request("chat.send", room_id=table["room"]["id"], text="brb"))["version"]
    await b.close()
    await table["a"].next_event("player.left")
    ack = await table["a"].request("dice.roll", room_id=table["room"]["id"], notation="100d1000!>1 chaos")
    results = ack["roll"]["terms"][0]["results"]
    assert 100 <= len(results) <= 200
    assert sum(1 for d in results if d.get("extra")) == len(results) - 100
    back = await api.ws(table["alice"])
    try:
        rejoin = await back.request("join", room_id=table["room"]["id"], since=last)
        rolled = [e for e in rejoin["events"] if e["type"] == "dice.rolled"]
        assert len(rolled) == 1 and rolled[0]["version"] == ack["version"]
        assert rolled[0]["roll"]["terms"] == ack["roll"]["terms"] and rolled[0]["roll"]["label"] == "chaos"
    finally:
        await back.close()

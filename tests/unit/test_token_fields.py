"""Tokens as characters (domain/token_fields.py, db/token_views.py): checking what clients send, the
copy each audience may see, and who receives which copy of a token event (the owner's through a
`pu:` term that a GM's socket never matches), as the preview index reads it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tableforge.db.event_log import encode_body
from tableforge.db.token_views import routed
from tableforge.domain import events as ev
from tableforge.domain import token_fields as tf
from tableforge.domain.audience import Picker, Routing, Selector, View
from tableforge.domain.errors import AppError
from tableforge.realtime.room_tokens import Lookup, RoomTokens

ROOM = str(uuid.uuid4())
ALICE, BOB, GM = "alice", "bob", "gm1"


def token(**over: Any) -> dict[str, Any]:
    base = {"id": str(uuid.uuid4()), "asset_id": "a", "owner_id": ALICE, "x": 1.0, "y": 2.0, "rotation": 0.0,
            "scale": 1.0, "z_index": 0, "version": 3, "scene_id": "s1", "hidden": False, "name": "Alia", "size": 2.0,
            "bars": tf.check_bars([{"key": "hp", "label": "HP", "value": 7, "max": 9, "visibility": "gm"},
                                   {"key": "stress", "label": "Stress", "visibility": "owners"},
                                   {"key": "armor", "label": "Armor", "value": 2}]),
            "conditions": ["prone"], "visibility": {"name": "everyone", "conditions": "owners"}}
    return base | over


def test_checks_give_stored_forms_and_refuse_with_codes() -> None:
    bars = tf.check_bars([{"key": "hp", "label": "HP", "max": 10}])
    assert bars == [{"key": "hp", "label": "HP", "value": 10, "max": 10, "color": "#cc3333", "visibility": "everyone"}]
    for bad in ([{"key": "HP"}], [{"key": "a"}, {"key": "a"}], [{"key": "a", "value": 1.5}],
                [{"key": "a", "max": 0}], [{"key": "a", "color": "red"}], [{"key": "a", "visibility": "all"}],
                [{"key": f"k{i}"} for i in range(4)], "hp"):
        with pytest.raises(AppError) as info:
            tf.check_bars(bad)
        assert info.value.code == "bad_token_field", bad
    assert tf.check_conditions(["Prone", "prone", " poisoned "]) == ["Prone", "poisoned"]
    with pytest.raises(AppError):
        tf.check_conditions(["a\nb"])
    with pytest.raises(AppError) as info:
        tf.check_size(21)
    assert info.value.code == "bad_token_size"
    assert tf.check_name("  Orc  ") == "Orc"


def test_each_level_gets_only_what_it_may_see() -> None:
    t = token()
    assert tf.for_level(t, tf.LEVEL_GM) is t
    mine = tf.for_level(t, tf.LEVEL_OWNER)
    assert [b["key"] for b in mine["bars"]] == ["stress", "armor"] and mine["conditions"] == ["prone"]
    theirs = tf.for_level(t, tf.LEVEL_PLAYER)
    assert [b["key"] for b in theirs["bars"]] == ["armor"] and theirs["conditions"] == []
    assert theirs["visibility"] == {"name": "everyone"} and theirs["name"] == "Alia"
    assert t["bars"][0]["key"] == "hp", "the whole token is left as it was"


def test_set_bar_and_conditions_respect_visibility() -> None:
    t = token()
    bars, bar = tf.set_bar(t["bars"], "stress", 4, "keep", tf.LEVEL_OWNER)
    assert bars[1] == bar and bar["value"] == 4 and bar["max"] is None and t["bars"][1]["value"] == 0
    with pytest.raises(AppError) as info:
        tf.set_bar(t["bars"], "hp", 1, "keep", tf.LEVEL_OWNER)
    assert info.value.code == "bar_not_found"
    _, bar = tf.set_bar(t["bars"], "hp", None, None, tf.LEVEL_GM)
    assert bar == {"key": "hp", "label": "HP", "value": 7, "max": None, "color": "#cc3333", "visibility": "gm"}
    assert tf.change_conditions(["prone"], "owners", tf.LEVEL_OWNER, ["Blind"], ["PRONE"]) == ["Blind"]
    with pytest.raises(AppError) as info:
        tf.change_conditions([], "gm", tf.LEVEL_OWNER, ["x"], [])
    assert info.value.code == "not_gm"


def test_defaults_come_from_the_template_and_a_broken_one_gives_none() -> None:
    size, bars = tf.defaults({"token_defaults": {"size": 2, "bars": [
        {"key": "hp", "label": "HP", "max": 8, "sheet_field": "hp"}]}})
    assert size == 2.0 and bars[0]["value"] == 8 and "sheet_field" not in bars[0]
    assert tf.defaults({"token_defaults": {"bars": [{"key": "Bad"}]}}) == (None, [])
    assert tf.defaults(None) == (None, [])


def frames(audience: str, variants: tuple[Any, ...]) -> dict[str, str]:
    routing = Routing(audience, tuple((sel, encode_body(t, ROOM, 5, 1.0, GM, p)) for sel, t, p in variants))
    picker = Picker(ROOM, 5, encode_body(ev.TOKEN_UPDATED, ROOM, 5, 1.0, GM, {"full": True}).decode(), routing)
    views = {"gm_here": View("gm", "s1", GM), "gm_owner_elsewhere": View("gm", "s2", ALICE),
             "alice": View("player", None, ALICE), "bob": View("player", None, BOB)}
    return {name: picker.frame(view) for name, view in views.items()}


def test_one_copy_per_audience_and_the_owner_term_skips_gm_sockets() -> None:
    assert Selector("pu:alice").matches(View("player", None, ALICE))
    assert not Selector("pu:alice").matches(View("gm", "s1", ALICE))
    t = token()
    audience, variants = routed(t, True, True, ev.TOKEN_UPDATED, lambda c: {"token": c})
    assert audience == "g@s1" and [v[0] for v in variants] == [f"pu:{ALICE}", "p"]
    got = frames(audience, variants)
    assert '"full":true' in got["gm_here"] and '"type":"room.skip"' in got["gm_owner_elsewhere"]
    assert '"stress"' in got["alice"] and '"hp"' not in got["alice"]
    assert '"stress"' not in got["bob"] and '"armor"' in got["bob"]
    plain = token(bars=[], visibility={"name": "everyone", "conditions": "everyone"})
    assert routed(plain, True, True, ev.TOKEN_UPDATED, lambda c: {"token": c}) == ("g@s1;p", ())
    assert routed(t, True, False, ev.TOKEN_UPDATED, lambda c: {"token": c}) == (
        "g@s1", (("p", ev.TOKEN_REMOVED, {"token_id": t["id"]}),))
    audience, variants = routed(t, False, True, ev.TOKEN_MOVED, lambda _: {"token_id": t["id"]}, carries_fields=False)
    assert [(v[0], v[1]) for v in variants] == [(f"pu:{ALICE}", ev.TOKEN_ADDED), ("p", ev.TOKEN_ADDED)]
    assert routed(t, True, True, ev.TOKEN_MOVED, lambda _: {}, carries_fields=False) == ("g@s1;p", ())


async def test_the_preview_index_counts_a_restricted_token_as_seen() -> None:
    index = RoomTokens()
    t = token(version=1)

    async def load() -> tuple[int, list[tuple[str, str | None, str, bool]], str]:
        return 0, [], "s1"

    assert await index.token(ROOM, t["id"], load) is Lookup.MISSING
    audience, variants = routed(t, None, True, ev.TOKEN_ADDED, lambda c: {"token": c})
    body = encode_body(ev.TOKEN_ADDED, ROOM, 1, 1.0, GM, {"token": t}).decode()
    encoded = Routing(audience, tuple((s, encode_body(k, ROOM, 1, 1.0, GM, p)) for s, k, p in variants))
    index.delivered(ROOM, 1, body, encoded.audience, encoded.encoded_variants().encode())
    found = await index.token(ROOM, t["id"], load)
    assert not isinstance(found, Lookup) and found.seen and found.owner == ALICE
    audience, variants = routed(t, True, True, ev.TOKEN_UPDATED, lambda c: {"token": c})
    encoded = Routing(audience, tuple((s, encode_body(k, ROOM, 2, 1.0, GM, p)) for s, k, p in variants))
    body = encode_body(ev.TOKEN_UPDATED, ROOM, 2, 1.0, GM, {"token": t}).decode()
    index.delivered(ROOM, 2, body, encoded.audience, encoded.encoded_variants().encode())
    found = await index.token(ROOM, t["id"], load)
    assert not isinstance(found, Lookup) and found.seen, "an update players see stays seen"

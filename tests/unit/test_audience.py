"""Audience selection (domain/audience.py) and its trip through the broker envelope: who gets the
main body, a variant or room.skip, one encoded frame per audience, and the same answer whether an
event comes live (envelope) or from the log (Logged)."""

from __future__ import annotations

import orjson
import pytest

from tableforge.db.log_store import token_routing
from tableforge.domain.audience import Logged, Picker, Routing, Selector, View, skip_frame
from tableforge.realtime.envelope import pack, peek_ts, peek_version, unpack

ROOM = "r0000000-0000-4000-8000-000000000000"
GM_A = View("gm", "scene-a", "gm1")
GM_B = View("gm", "scene-b", "gm2")
ALICE = View("player", None, "alice")
BOB = View("player", None, "bob")
WATCHER = View("spectator", None, "watcher")
EVERYONE = (GM_A, GM_B, ALICE, BOB, WATCHER)


def bodies(routing: Routing, main: str = '{"type":"main"}', version: int = 7) -> dict[str, str]:
    picker = Picker(ROOM, version, main, routing)
    return {view.user_id: picker.frame(view) for view in EVERYONE}


def test_selector_terms() -> None:
    assert Selector("g").matches(GM_A) and Selector("g").matches(GM_B) and not Selector("g").matches(ALICE)
    assert Selector("g@scene-a").matches(GM_A) and not Selector("g@scene-a").matches(GM_B)
    players = Selector("p")
    assert players.matches(ALICE) and players.matches(WATCHER) and not players.matches(GM_A)
    assert Selector("u:bob").matches(BOB) and not Selector("u:bob").matches(ALICE)
    assert Selector("u:gm2").matches(GM_B), "a user term matches whatever the role"
    assert Selector("g@scene-a;p;u:gm2").matches(GM_B)
    with pytest.raises(ValueError):
        Selector("x:1")


def test_everyone_gets_the_main_body() -> None:
    assert set(bodies(Routing()).values()) == {'{"type":"main"}'}


def test_a_hidden_token_move_is_the_gms_of_its_scene_and_a_skip_for_everyone_else() -> None:
    audience, flip = token_routing("scene-a", False, False)
    got = bodies(Routing(audience))
    skip = skip_frame(ROOM, 7)
    assert got == {"gm1": '{"type":"main"}', "gm2": skip, "alice": skip, "bob": skip, "watcher": skip}
    assert orjson.loads(skip) == {"type": "room.skip", "room_id": ROOM, "version": 7} and flip is None


def test_visibility_flips_become_variants_for_players() -> None:
    assert token_routing("scene-a", True, True) == ("g@scene-a;p", None)
    assert token_routing("scene-a", None, True) == ("g@scene-a;p", None)
    assert token_routing("scene-a", None, False) == ("g@scene-a", None)
    assert token_routing("scene-a", False, True) == ("g@scene-a", "added")
    assert token_routing("scene-a", True, False) == ("g@scene-a", "removed")
    routing = Routing("g@scene-a", (("p", b'{"type":"token.added"}'),))
    got = bodies(routing)
    assert got["gm1"] == '{"type":"main"}' and got["alice"] == got["watcher"] == '{"type":"token.added"}'
    assert got["gm2"] == skip_frame(ROOM, 7)


def test_whispers_and_secret_rolls() -> None:
    whisper = bodies(Routing("u:alice;u:bob"))
    assert [u for u, b in whisper.items() if b != skip_frame(ROOM, 7)] == ["alice", "bob"]
    gm_roll = bodies(Routing("g;u:bob"))
    assert [u for u, b in gm_roll.items() if b != skip_frame(ROOM, 7)] == ["gm1", "gm2", "bob"]


def test_one_frame_per_audience() -> None:
    picker = Picker(ROOM, 3, '{"type":"main"}', Routing("g@scene-a;p"))
    frames = [picker.frame(v) for v in (ALICE, BOB, WATCHER, GM_B, GM_B)]
    assert frames[0] is frames[1] is frames[2], "the players share one string"
    assert frames[3] is frames[4], "and so do the GMs of another scene (one room.skip)"


def test_the_envelope_and_the_log_carry_the_same_routing() -> None:
    routing = Routing("g@scene-a", (("p", b'{"type":"token.removed","token_id":"t"}'),))
    body = b'{"type":"token.moved","x":1}'
    env = unpack(pack(12, 1234.5, "i/c", body, routing))
    assert (env.version, env.ts_ms, env.sender, env.body) == (12, 1234.5, "i/c", body)
    assert env.routing == routing
    assert peek_version(pack(12, 1234.5, "i/c", body, routing)) == 12
    assert peek_ts(pack(12, 1234.5, "i/c", body, routing)) == 1234.5
    logged = Logged(12, body.decode(), routing.audience, routing.encoded_variants())
    assert logged.routing == routing
    plain = unpack(pack(3, 1.0, "", b'{"a":"|"}'))
    assert plain.routing == Routing() and plain.body == b'{"a":"|"}' and plain.audience is None
    assert Logged(3, "{}").routing == Routing()

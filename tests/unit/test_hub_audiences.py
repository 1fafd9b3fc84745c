"""The hub with audiences: each socket gets, for every version, the body its audience receives or
room.skip, whether the event comes from the broker, from the log (a gap filled), or was held while
the socket was joining; a GM switching scenes gets the new scene's events after its snapshot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from tests.support.waiting import wait_until
from tests.unit.test_hub import OPEN, ROOM, Client, EventLog, ScriptedBroker, make_hub

from tableforge.domain.audience import Logged, Routing, View
from tableforge.realtime.envelope import pack
from tableforge.realtime.hub import Hub

A, B = "scene-a", "scene-b"


class AudienceLog(EventLog):
    """The fake log, with an audience per stored event, as `room_events` keeps it."""

    def __init__(self) -> None:
        super().__init__()
        self.routings: dict[int, Routing] = {}

    def store(self, routing: Routing) -> int:
        version = self.append()[0]
        self.routings[version] = routing
        return version

    async def history(self, room_id: str, after: int, upto: int) -> list[Logged]:
        rows = await super().history(room_id, after, upto)
        routed = [(r, self.routings[r.version]) for r in rows]
        return [Logged(r.version, r.body, routing.audience, routing.encoded_variants()) for r, routing in routed]

    def envelope(self, version: int, sender: str = "") -> bytes:
        return pack(version, 1.0, sender, self.events[version].encode(), self.routings[version])


@pytest.fixture
async def hub() -> AsyncIterator[tuple[Hub, AudienceLog]]:
    log = AudienceLog()
    hub = make_hub(ScriptedBroker(), log)
    yield hub, log
    await hub.close()
    while OPEN:
        await OPEN.pop().stop()


async def seat(hub: Hub, name: str, view: View) -> Client:
    client = Client(name)
    await hub.attach(client.conn, ROOM, view)
    hub.activate(client.conn, ROOM, max(0, hub.rooms[ROOM].expected - 1), '{"type":"ack"}')
    return client


def got(client: Client) -> list[tuple[int, str]]:
    return [(f["version"], f["type"]) for f in client.frames if "version" in f]


async def test_each_socket_gets_its_audiences_frame_for_every_version(hub: tuple[Hub, AudienceLog]) -> None:
    h, log = hub
    gm_a = await seat(h, "gma", View("gm", A, "gm1"))
    gm_b = await seat(h, "gmb", View("gm", B, "gm2"))
    alice = await seat(h, "alice", View("player", None, "alice"))
    watcher = await seat(h, "watch", View("spectator", None, "watcher"))
    flip = orjson.dumps({"type": "token.removed", "room_id": ROOM, "version": 3, "token_id": "t"})
    routings = [Routing(f"g@{A};p"), Routing(f"g@{A}"), Routing(f"g@{A}", (("p", flip),)), Routing("u:alice"),
                Routing()]
    versions = [log.store(routing) for routing in routings]
    for version in versions:
        h.on_room_message(ROOM, log.envelope(version))
    await wait_until(lambda: all(len(got(c)) == 5 for c in (gm_a, gm_b, alice, watcher)), what="every version")
    assert got(gm_a) == [(1, "token.moved"), (2, "token.moved"), (3, "token.moved"), (4, "room.skip"),
                         (5, "token.moved")]
    assert got(gm_b) == [(1, "room.skip"), (2, "room.skip"), (3, "room.skip"), (4, "room.skip"), (5, "token.moved")]
    assert got(alice) == [(1, "token.moved"), (2, "room.skip"), (3, "token.removed"), (4, "token.moved"),
                          (5, "token.moved")]
    assert got(watcher) == [(1, "token.moved"), (2, "room.skip"), (3, "token.removed"), (4, "room.skip"),
                            (5, "token.moved")]
    assert watcher.frames[2] == {"type": "room.skip", "room_id": ROOM, "version": 2}  # after its ack and v1


async def test_a_gap_filled_from_the_log_is_filtered_the_same_way(hub: tuple[Hub, AudienceLog]) -> None:
    h, log = hub
    gm = await seat(h, "gm", View("gm", A, "gm1"))
    alice = await seat(h, "alice", View("player", None, "alice"))
    first, lost, last = log.store(Routing(f"g@{A}")), log.store(Routing("u:alice")), log.store(Routing(f"g@{A};p"))
    h.on_room_message(ROOM, log.envelope(first))
    h.on_room_message(ROOM, log.envelope(last))  # `lost` never comes through the broker
    await wait_until(lambda: len(got(alice)) == 3 and len(got(gm)) == 3, what="the gap filled from the log")
    assert got(alice) == [(first, "room.skip"), (lost, "token.moved"), (last, "token.moved")]
    assert got(gm) == [(first, "token.moved"), (lost, "room.skip"), (last, "token.moved")]


async def test_a_gm_switching_scenes_gets_the_new_scenes_events_after_its_snapshot(
        hub: tuple[Hub, AudienceLog]) -> None:
    h, log = hub
    gm = await seat(h, "gm", View("gm", A, "gm1"))
    before = log.store(Routing(f"g@{B}"))
    h.on_room_message(ROOM, log.envelope(before))
    await wait_until(lambda: len(got(gm)) == 1, what="the first event")
    assert h.review(gm.conn, ROOM, View("gm", B, "gm1"))
    held = [log.store(Routing(f"g@{B}")), log.store(Routing(f"g@{A}"))]
    for version in held:  # while its snapshot of B is read: held, then picked for the new view
        h.on_room_message(ROOM, log.envelope(version))
    assert len(got(gm)) == 1
    h.activate(gm.conn, ROOM, before, '{"type":"ack","scene_id":"scene-b"}')
    await wait_until(lambda: len(got(gm)) == 3, what="the held events")
    assert got(gm) == [(before, "room.skip"), (held[0], "token.moved"), (held[1], "room.skip")]


async def test_previews_go_only_to_their_audience(hub: tuple[Hub, AudienceLog]) -> None:
    h, _ = hub
    gm = await seat(h, "gm", View("gm", A, "gm1"))
    alice = await seat(h, "alice", View("player", None, "alice"))
    moving = orjson.dumps({"type": "token.moving", "room_id": ROOM, "token_id": "t", "x": 1, "y": 2})
    h.on_room_message(ROOM, pack(0, 1.0, "", moving, Routing(f"g@{A}")))
    h.on_room_message(ROOM, pack(0, 1.0, "", moving.replace(b'"t"', b'"v"'), Routing(f"g@{A};p")))
    await wait_until(lambda: len(alice.frames) == 2 and len(gm.frames) == 3, what="the previews (after the acks)")
    assert alice.frames[1]["token_id"] == "v", "the hidden token's preview never came"

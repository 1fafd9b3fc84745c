"""The load generator rejoins like a client should: after a `room.resync` (or a gap) with `since` =
the highest version it applied, not the highest it saw, or the events in the hole are lost for good
and the integrity check blames the server."""

from __future__ import annotations

import random
import time

from tableforge.loadtest.model import LoadConfig, Player, Room, integrity
from tableforge.loadtest.players import Simulation
from tests.support.client import Api
from tests.support.waiting import wait_until


def test_applied_stops_at_the_first_gap() -> None:
    p = Player(0, "a", Room(0), "http://x", random.Random(0), first_version=10, versions=[11, 12, 14, 15])
    assert p.last_version == 15
    assert p.applied == 12
    p.covered.append((12, 13))  # a snapshot resync filled the hole
    assert p.applied == 15


async def test_a_room_resync_is_fetched_with_since_the_last_applied_version(api: Api) -> None:
    gm, alice = await api.register("gm"), await api.register("al")
    room_body = await api.room(gm, alice)
    room = Room(0, id=room_body["id"])
    p = Player(0, alice.user["username"], room, api.base_url, random.Random(0), token=alice.token, user_id=alice.id)
    sim = Simulation(LoadConfig(urls=[api.base_url], users=1, rooms=1, duration=1, ramp_up=0), [p], [room])
    gm_ws = await api.ws(gm)
    try:
        assert (await gm_ws.request("join", room_id=room.id))["type"] == "ack"
        assert await sim.connect(p)
        first = p.first_version
        assert first is not None
        said = [(await gm_ws.request("chat.send", room_id=room.id, text=f"m{i}"))["version"] for i in range(3)]
        await wait_until(lambda: set(said) <= set(p.versions), what="alice received the three messages")
        # The server skipped the middle one for this socket and says so (room.resync carries the
        # version skipped up to; it is not an event the client applied).
        p.versions.remove(said[1])
        sim._on_frame(p, {"type": "room.resync", "room_id": room.id, "version": said[1]}, time.perf_counter(), 0.0)
        assert p.resync and said[1] not in p.versions
        assert p.applied == said[0] and p.last_version == said[2]
        assert await sim.join(p, since=p.applied)
        assert not p.resync
        room.final_version = said[2]
        p.online_at_end = True
        checked = integrity([p])
        assert (checked["lost"], checked["duplicates"]) == (0, 0), checked
        assert checked["versions_checked"] == said[2] - first
    finally:
        await sim.disconnect(p)
        await gm_ws.close()

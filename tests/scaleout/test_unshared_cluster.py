"""A room whose sockets are all on one instance is not published to Redis (redis_sharing.py), and a
player who then joins it on another instance gets every later change. (A change made while the
newcomer's hello is on its way is timing this test cannot force: test_redis_broker.py holds it.)"""

from __future__ import annotations

import re

import httpx

from tests.support.client import Api, Ws
from tests.support.cluster import Cluster
from tests.support.waiting import eventually


async def _unshared_stored(base_url: str) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{base_url}/metrics")).text
    found = re.search(r'^tableforge_broker_unshared_total\{kind="stored"\} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_room_on_one_instance_stays_there_until_a_player_joins_on_another(pair: Cluster) -> None:
    first, second = pair.servers
    async with Api(first.base_url) as api:
        gm, alice, bob = await api.register("gm"), await api.register("al"), await api.register("bo")
        room = await api.room(gm, alice, bob)
        asset = await api.asset(gm, room["id"])
        gm_ws, alice_ws = await Ws.connect(first.ws_url, gm.token), await Ws.connect(first.ws_url, alice.token)
        for ws in (gm_ws, alice_ws):
            assert (await ws.request("join", room_id=room["id"]))["type"] == "ack"
        token = (await gm_ws.request("token.add", room_id=room["id"], asset_id=asset["id"], x=0, y=0))["token"]
        before = await _unshared_stored(first.base_url)
        x = 0

        async def moves_stay_on_the_first_instance() -> bool:
            nonlocal x
            x += 1
            await gm_ws.request("token.move", room_id=room["id"], token_id=token["id"], x=x, y=0)
            assert (await alice_ws.next_event("token.moved"))["x"] == x  # its own instance delivers it
            return await _unshared_stored(first.base_url) > before

        await eventually(moves_stay_on_the_first_instance, what="moves kept on the first instance")

        bob_ws = await Ws.connect(second.ws_url, bob.token)
        joined = await bob_ws.request("join", room_id=room["id"])
        racing = await gm_ws.request("token.move", room_id=room["id"], token_id=token["id"], x=1000, y=1)
        seen = await bob_ws.next_event("token.moved")  # nothing follows it that would reveal a gap
        assert (seen["version"], seen["x"]) == (racing["version"], 1000) and joined["version"] < racing["version"]
        later = await gm_ws.request("token.move", room_id=room["id"], token_id=token["id"], x=1001, y=2)
        seen = await bob_ws.next_event("token.moved")
        assert (seen["version"], seen["x"]) == (later["version"], 1001)
        chat = await bob_ws.request("chat.send", room_id=room["id"], text="hello from the second instance")
        heard = await gm_ws.next_event("chat.message")
        assert (heard["version"], heard["message"]["text"]) == (chat["version"], "hello from the second instance")
        for ws in (gm_ws, alice_ws, bob_ws):
            await ws.close()

"""Preview moves are checked on every instance from the events it delivers: a token added or
removed through another instance is known to the instance that checks the preview."""

from __future__ import annotations

import json

from tests.support.client import Api, Ws
from tests.support.cluster import Cluster


async def _preview(ws: Ws, room_id: str, token_id: str, msg_id: str) -> dict:
    """A preview with an id gets exactly one answer: an empty ack, or the error that refused it."""
    await ws.send_raw(json.dumps({"type": "token.move", "id": msg_id, "room_id": room_id, "token_id": token_id,
                                  "x": 3, "y": 4, "preview": True}))
    while True:
        msg = await ws.next_event()
        if msg.get("id") == msg_id:
            return msg


async def test_previews_follow_tokens_changed_through_another_instance(pair: Cluster) -> None:
    first, second = pair.servers
    async with Api(first.base_url) as api:
        gm, alice = await api.register("gm"), await api.register("al")
        room = await api.room(gm, alice)
        asset = await api.asset(gm, room["id"])
        gm_ws = await Ws.connect(first.ws_url, gm.token)
        alice_first = await Ws.connect(first.ws_url, alice.token)
        alice_second = await Ws.connect(second.ws_url, alice.token)
        for ws in (gm_ws, alice_first, alice_second):
            assert (await ws.request("join", room_id=room["id"]))["type"] == "ack"
        gm_token = (await gm_ws.request("token.add", room_id=room["id"], asset_id=asset["id"], x=1, y=1))["token"]
        await alice_second.next_event("token.added")
        # The second instance loads its index here, then learns only from events.
        refused = await _preview(alice_second, room["id"], gm_token["id"], "gm-token")
        assert (refused["type"], refused["code"]) == ("error", "not_token_owner")

        mine = (await alice_first.request("token.add", room_id=room["id"], asset_id=asset["id"], x=2, y=2))["token"]
        await alice_second.next_event("token.added")  # delivered on the second instance too
        allowed = await _preview(alice_second, room["id"], mine["id"], "mine")
        assert allowed["type"] == "ack", allowed
        moving = await gm_ws.next_event("token.moving")
        assert (moving["token_id"], moving["by"]) == (mine["id"], alice.id)

        await gm_ws.request("token.remove", room_id=room["id"], token_id=mine["id"])
        await alice_second.next_event("token.removed")
        gone = await _preview(alice_second, room["id"], mine["id"], "gone")
        assert (gone["type"], gone["code"]) == ("error", "token_not_found")
        for ws in (gm_ws, alice_first, alice_second):
            await ws.close()


async def test_every_frame_arrives_once_on_the_senders_instance_and_on_the_other(pair: Cluster) -> None:
    """The hub delivers to its own sockets when it publishes; Redis brings the same messages back to
    that instance, which must drop them: a socket beside the sender gets each preview and each event
    once, in order, as a socket on the other instance does."""
    first, second = pair.servers
    async with Api(first.base_url) as api:
        gm, alice, bob = await api.register("gm"), await api.register("al"), await api.register("bo")
        room = await api.room(gm, alice, bob)
        asset = await api.asset(gm, room["id"])
        gm_ws = await Ws.connect(first.ws_url, gm.token)  # beside alice
        alice_ws = await Ws.connect(first.ws_url, alice.token)
        bob_ws = await Ws.connect(second.ws_url, bob.token)  # on the other instance
        for ws in (gm_ws, alice_ws, bob_ws):
            assert (await ws.request("join", room_id=room["id"]))["type"] == "ack"
        token = (await alice_ws.request("token.add", room_id=room["id"], asset_id=asset["id"], x=0, y=0))["token"]
        for ws in (gm_ws, bob_ws):
            await ws.next_event("token.added")
        for x in range(1, 6):
            assert (await _preview_at(alice_ws, room["id"], token["id"], x))["type"] == "ack"
        moved = await alice_ws.request("token.move", room_id=room["id"], token_id=token["id"], x=6, y=0)
        assert moved["type"] == "ack", moved
        # bob answers once he has the move: through Redis, after everything alice's instance published
        # before it, so an echo of alice's own messages would reach the gm before bob's chat does.
        await bob_ws.next_event("token.moved")
        await bob_ws.request("chat.send", room_id=room["id"], text="seen")
        await gm_ws.next_event("chat.message")
        for ws in (gm_ws, bob_ws):
            kinds = ("token.moving", "token.moved", "token.added")
            frames = [f for f in map(json.loads, ws.raw) if f.get("type") in kinds]
            assert [(f["type"], f["token"]["x"] if "token" in f else f["x"]) for f in frames] == [
                ("token.added", 0), *[("token.moving", float(x)) for x in range(1, 6)], ("token.moved", 6.0)
            ], frames
        for ws in (gm_ws, alice_ws, bob_ws):
            await ws.close()


async def _preview_at(ws: Ws, room_id: str, token_id: str, x: int) -> dict:
    await ws.send_raw(json.dumps({"type": "token.move", "id": f"p{x}", "room_id": room_id, "token_id": token_id,
                                  "x": x, "y": 0, "preview": True}))
    while True:
        msg = await ws.next_event()
        if msg.get("id") == f"p{x}":
            return msg

"""Hidden information on one server (embedded: SQLite, and PostgreSQL without Redis): the scripted
sessions of tests/support/hidden_session.py."""

from __future__ import annotations

from tests.support.client import Api
from tests.support.hidden_session import hidden_tokens_session, spectator_session, whispers_and_rolls_session


async def test_players_never_receive_hidden_tokens(api: Api) -> None:
    await hidden_tokens_session(api, api)


async def test_whispers_and_secret_rolls_reach_exactly_their_audience(api: Api) -> None:
    await whispers_and_rolls_session(api, api)


async def test_a_spectator_sees_what_players_see_and_cannot_act(api: Api) -> None:
    await spectator_session(api, api)


async def test_the_gm_layer_over_http(api: Api) -> None:
    """The token and asset routes set `hidden` for GMs only, and what they hide leaves the players'
    snapshot, listing and socket at once; a hidden asset's tokens are hidden data too."""
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    rid = room["id"]
    asset = await api.asset(gm, rid)
    ws = await api.ws(alice)
    try:
        await ws.request("join", room_id=rid)
        r = await api.http.post(f"/api/rooms/{rid}/tokens", headers=gm.headers,
                                json={"asset_id": asset["id"], "x": 5, "y": 5, "hidden": True})
        assert r.status_code == 201 and r.json()["hidden"] is True, r.text
        token = r.json()
        assert token["id"] not in str(await api.snapshot(alice, rid))
        r = await api.http.post(f"/api/rooms/{rid}/tokens", headers=alice.headers,
                                json={"asset_id": asset["id"], "x": 5, "y": 5, "hidden": True})
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_gm"
        r = await api.http.patch(f"/api/rooms/{rid}/tokens/{token['id']}", headers=gm.headers, json={"hidden": False})
        assert r.status_code == 200 and r.json()["hidden"] is False
        shown = await ws.next_event("token.added")
        assert shown["token"]["id"] == token["id"] and shown["version"] == r.json()["room_version"]
        assert token["id"] in {t["id"] for t in (await api.snapshot(alice, rid))["tokens"]}

        r = await api.http.patch(f"/api/assets/{asset['id']}", headers=alice.headers, json={"hidden": True})
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_gm"
        r = await api.http.patch(f"/api/assets/{asset['id']}", headers=gm.headers, json={"hidden": True})
        assert r.status_code == 200 and r.json()["hidden"] is True
        gone = await ws.next_event()
        assert gone == {"type": "asset.removed", "room_id": rid, "version": gone["version"], "ts": gone["ts"],
                        "by": gm.id, "asset_id": asset["id"], "reason": "hidden"}
        snap = await api.snapshot(alice, rid)
        assert snap["assets"] == [] and snap["tokens"] == [], "its token went with it"
        listed = await api.http.get(f"/api/rooms/{rid}/assets", headers=alice.headers)
        assert listed.json()["assets"] == []
        r = await api.http.patch(f"/api/assets/{asset['id']}", headers=alice.headers, json={"hidden": False})
        assert r.status_code == 404 and r.json()["error"]["code"] == "asset_not_found", "what players may not know of"
        r = await api.http.patch(f"/api/assets/{asset['id']}", headers=gm.headers, json={"hidden": False})
        back = await ws.next_event("asset.added")
        assert back["asset"]["id"] == asset["id"] and [t["id"] for t in back["tokens"]] == [token["id"]]
        gm_list = await api.http.get(f"/api/rooms/{rid}/assets", headers=gm.headers)
        assert [a["id"] for a in gm_list.json()["assets"]] == [asset["id"]]
    finally:
        await ws.close()


async def test_a_hidden_map_stays_the_players_map_and_a_deleted_one_goes(api: Api) -> None:
    """Hiding the image of the players' scene's map is `asset.removed {reason: "hidden"}` for players,
    and the scene keeps showing it (snapshot and scene list); deleting it is `reason: "deleted"` and
    the scene has no map any more."""
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    rid = room["id"]
    asset = await api.asset(gm, rid)
    g, a = await api.ws(gm), await api.ws(alice)
    try:
        joined = await g.request("join", room_id=rid)
        scene = joined["scene_id"]
        await a.request("join", room_id=rid)
        upd = await g.request("scene.update", room_id=rid, scene_id=scene, map_asset_id=asset["id"])
        assert upd["type"] == "ack" and upd["scene"]["map"]["asset_id"] == asset["id"], upd
        assert (await a.next_event("scene.updated"))["scene"]["map"]["url"] == asset["url"]

        r = await api.http.patch(f"/api/assets/{asset['id']}", headers=gm.headers, json={"hidden": True})
        assert r.status_code == 200, r.text
        gone = await a.next_event()
        assert (gone["type"], gone["asset_id"], gone["reason"]) == ("asset.removed", asset["id"], "hidden")
        snap = await api.snapshot(alice, rid)
        assert snap["assets"] == [], "the image itself is hidden from the players"
        assert snap["scene"]["map"] == {"asset_id": asset["id"], "url": asset["url"], "width": asset["width"],
                                        "height": asset["height"]}, "but it is still their scene's map"
        listed = await api.http.get(f"/api/rooms/{rid}/scenes", headers=alice.headers)
        assert [s["map"]["asset_id"] for s in listed.json()["scenes"]] == [asset["id"]]

        r = await api.http.delete(f"/api/assets/{asset['id']}", headers=gm.headers)
        assert r.status_code in (200, 204), r.text
        seen = await g.next_event("asset.removed")
        assert (seen["asset_id"], seen["reason"]) == (asset["id"], "deleted")
        assert (await api.snapshot(alice, rid))["scene"]["map"] is None
        assert (await api.snapshot(gm, rid))["scene"]["map"] is None
    finally:
        await g.close()
        await a.close()


async def test_player_joined_carries_the_joiners_role(api: Api) -> None:
    """The GM sees who joined as what (player, spectator), live and in `join {since}` recovery."""
    gm, alice, sam = await api.register("gm"), await api.register("al"), await api.register("sam")
    room = await api.room(gm, alice)
    rid = room["id"]
    r = await api.http.post("/api/rooms/join", json={"invite_code": room["spectator_invite_code"]}, headers=sam.headers)
    assert r.status_code == 200, r.text
    g, a, s = await api.ws(gm), await api.ws(alice), await api.ws(sam)
    try:
        start = (await g.request("join", room_id=rid))["version"]
        await a.request("join", room_id=rid)
        first = await g.next_event("player.joined")
        assert (first["user"]["id"], first["role"]) == (alice.id, "player")
        await s.request("join", room_id=rid)
        second = await g.next_event("player.joined")
        assert (second["user"]["id"], second["role"]) == (sam.id, "spectator")
        again = await a.request("join", room_id=rid, since=start)
        replayed = {e["user"]["id"]: e["role"] for e in again["events"] if e["type"] == "player.joined"}
        assert (replayed.get(alice.id), replayed.get(sam.id)) == ("player", "spectator"), again["events"]
    finally:
        for ws in (g, a, s):
            await ws.close()

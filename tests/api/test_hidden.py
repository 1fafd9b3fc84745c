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
                        "by": gm.id, "asset_id": asset["id"]}
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

"""Rooms, invites, the snapshot, assets and HTTP token routes."""

from __future__ import annotations

from tests.support.client import Api, png_bytes


async def test_room_lifecycle_and_membership(api: Api) -> None:
    gm, alice, stranger = await api.register("gm"), await api.register("al"), await api.register("st")
    systems = (await api.http.get("/api/systems")).json()["systems"]
    room = await api.room(gm, alice, system_id=systems[0]["id"])
    assert room["role"] == "gm" and len(room["invite_code"]) >= 8 and room["version"] == 0

    mine = (await api.http.get("/api/rooms", headers=alice.headers)).json()["rooms"]
    assert [r["id"] for r in mine] == [room["id"]] and mine[0]["role"] == "player"
    assert "invite_code" not in mine[0], "only the GM sees the invite code"

    snap = await api.snapshot(alice, room["id"])
    assert set(snap) >= {"room", "players", "assets", "tokens"}
    assert snap["room"]["game_system_id"] == systems[0]["id"] and "invite_code" not in snap["room"]
    roles = {p["user"]["id"]: p["role"] for p in snap["players"]}
    assert roles == {gm.id: "gm", alice.id: "player"}
    assert "invite_code" in (await api.snapshot(gm, room["id"]))["room"]

    players = (await api.http.get(f"/api/rooms/{room['id']}/players", headers=alice.headers)).json()["players"]
    assert {p["user"]["username"] for p in players} == {gm.user["username"], alice.user["username"]}
    assert all(p["is_online"] is False and p["joined_at"] for p in players)
    online = await api.http.get(f"/api/rooms/{room['id']}/players", params={"online": "true"}, headers=gm.headers)
    assert online.json()["players"] == []

    assert (await api.http.get(f"/api/rooms/{room['id']}", headers=stranger.headers)).status_code == 403
    rejoin = await api.http.post("/api/rooms/join", json={"invite_code": room["invite_code"]}, headers=alice.headers)
    assert rejoin.status_code == 200 and rejoin.json()["role"] == "player"
    bad_code = await api.http.post("/api/rooms/join", json={"invite_code": "NOPE12345"}, headers=stranger.headers)
    assert bad_code.status_code == 404
    missing = await api.http.get("/api/rooms/00000000-0000-0000-0000-000000000000", headers=gm.headers)
    assert missing.status_code == 404

    assert (await api.http.delete(f"/api/rooms/{room['id']}", headers=alice.headers)).status_code == 403
    assert (await api.http.delete(f"/api/rooms/{room['id']}", headers=gm.headers)).status_code == 204
    closed = await api.snapshot(gm, room["id"])
    assert closed["room"]["is_active"] is False
    late = await api.http.post("/api/rooms/join", json={"invite_code": room["invite_code"]}, headers=stranger.headers)
    assert late.status_code == 404
    asset = await api.upload(gm, room["id"])
    assert asset.status_code == 409 and asset.json()["error"]["code"] == "room_closed"


async def test_room_needs_a_usable_system(api: Api) -> None:
    gm = await api.register("gm")
    r = await api.http.post("/api/rooms", json={"name": "x", "game_system_id": "00000000-0000-0000-0000-000000000000"},
                            headers=gm.headers)
    assert r.status_code == 404
    assert (await api.http.post("/api/rooms", json={"name": ""}, headers=gm.headers)).status_code == 422
    assert (await api.http.post("/api/rooms", json={"name": "ok"})).status_code == 401


async def test_asset_upload_serve_and_delete(api: Api) -> None:
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    data = png_bytes(40, 30, "blue")
    r = await api.upload(alice, room["id"], data, filename="goblin.png")
    assert r.status_code == 201, r.text
    asset = r.json()
    assert (asset["type"], asset["width"], asset["height"], asset["size"]) == ("png", 40, 30, len(data))
    assert asset["name"] == "goblin.png" and asset["url"] == f"/assets/{asset['sha256']}.png"

    got = await api.http.get(asset["url"])
    assert got.status_code == 200 and got.content == data and got.headers["content-type"] == "image/png"
    assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
    again = await api.http.get(asset["url"], headers={"If-None-Match": got.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert (await api.http.get("/assets/" + "0" * 64 + ".png")).status_code == 404
    assert (await api.http.get("/assets/../../etc/passwd.png")).status_code == 404

    listed = (await api.http.get(f"/api/rooms/{room['id']}/assets", headers=gm.headers)).json()["assets"]
    assert [a["id"] for a in listed] == [asset["id"]]

    # A token from the GM on the player's asset; the GM may delete the asset, which removes the token too.
    tok = await api.http.post(f"/api/rooms/{room['id']}/tokens", headers=gm.headers,
                              json={"asset_id": asset["id"], "x": 10, "y": 20})
    assert tok.status_code == 201 and tok.json()["owner_id"] == gm.id
    other = await api.register("st")
    assert (await api.http.delete(f"/api/assets/{asset['id']}", headers=other.headers)).status_code == 403
    assert (await api.http.delete(f"/api/assets/{asset['id']}", headers=gm.headers)).status_code == 204
    snap = await api.snapshot(alice, room["id"])
    assert snap["assets"] == [] and snap["tokens"] == []
    assert (await api.http.get(asset["url"])).status_code == 404


async def test_http_token_routes(api: Api) -> None:
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    asset = await api.asset(gm, room["id"])
    r = await api.http.post(f"/api/rooms/{room['id']}/tokens", headers=alice.headers,
                            json={"asset_id": asset["id"], "x": 1.5, "y": -2, "rotation": 90, "scale": 2, "z_index": 3})
    assert r.status_code == 201
    token = r.json()
    assert (token["x"], token["y"], token["rotation"], token["scale"], token["z_index"], token["version"]) == \
        (1.5, -2.0, 90.0, 2.0, 3, 1)
    url = f"/api/rooms/{room['id']}/tokens/{token['id']}"
    moved = await api.http.patch(url, json={"x": 7, "if_version": 1}, headers=alice.headers)
    assert moved.status_code == 200 and moved.json()["x"] == 7 and moved.json()["version"] == 2
    stale = await api.http.patch(url, json={"x": 8, "if_version": 1}, headers=gm.headers)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "conflict"
    gm_move = await api.http.patch(url, json={"y": 9}, headers=gm.headers)
    assert gm_move.status_code == 200 and gm_move.json()["y"] == 9
    mine = await api.http.post(f"/api/rooms/{room['id']}/tokens", headers=gm.headers,
                               json={"asset_id": asset["id"], "x": 0, "y": 0})
    denied = await api.http.patch(f"/api/rooms/{room['id']}/tokens/{mine.json()['id']}", json={"x": 1},
                                  headers=alice.headers)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "not_token_owner"
    assert (await api.http.delete(url, headers=alice.headers)).status_code == 200
    snap = await api.snapshot(gm, room["id"])
    assert [t["id"] for t in snap["tokens"]] == [mine.json()["id"]]
    assert snap["tokens"][0]["x"] == 0
    assert snap["room"]["version"] == 6  # asset.added, token.added, 2 updates, token.added, token.removed


async def test_same_image_uploaded_at_once(api: Api) -> None:
    import asyncio

    gm = await api.register("gm")
    room = await api.room(gm)
    data = png_bytes(20, 20, "green")
    results = await asyncio.gather(*(api.upload(gm, room["id"], data) for _ in range(8)))
    assert [r.status_code for r in results] == [201] * 8
    assert len({r.json()["sha256"] for r in results}) == 1 and len({r.json()["id"] for r in results}) == 8
    assert (await api.http.get(results[0].json()["url"])).content == data

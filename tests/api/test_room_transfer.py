"""`GET /api/rooms/{id}/export` and `POST /api/rooms/import`, on both backends: the GM takes a room
file, another user imports it and becomes its GM, alone (nobody else is made a member or an author
by a file); players cannot export; a file that is not a room file is refused, changing nothing."""

from __future__ import annotations

import io
import zipfile

from tests.support.client import Api


async def test_export_then_import_over_http(api: Api) -> None:
    gm, alice, carol = await api.register("gm"), await api.register("alice"), await api.register("carol")
    room = await api.room(gm, alice)
    rid = room["id"]
    asset = await api.asset(gm, rid)
    ws = await api.ws(gm)
    try:
        assert (await ws.request("join", room_id=rid))["type"] == "ack"
        hidden = await ws.request("token.add", room_id=rid, asset_id=asset["id"], x=3, y=4, hidden=True)
        assert hidden["type"] == "ack", hidden
        said = await ws.request("chat.send", room_id=rid, text="only alice", to=[alice.id])
        assert said["type"] == "ack", said
    finally:
        await ws.close()

    refused = await api.http.get(f"/api/rooms/{rid}/export", headers=alice.headers)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_gm"
    outsider = await api.http.get(f"/api/rooms/{rid}/export", headers=carol.headers)
    assert outsider.status_code == 403 and outsider.json()["error"]["code"] == "not_member"
    got = await api.http.get(f"/api/rooms/{rid}/export", headers=gm.headers)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(got.content)).namelist()
    assert names[:2] == ["manifest.json", "rooms/0.json"] and len(names) == 3

    before = (await api.http.get("/api/rooms", headers=carol.headers)).json()
    bad = await api.http.post("/api/rooms/import", headers=carol.headers,
                              files={"file": ("x.tfroom", b"not a zip at all", "application/zip")})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_room_file"
    assert (await api.http.get("/api/rooms", headers=carol.headers)).json() == before

    done = await api.http.post("/api/rooms/import", headers=carol.headers,
                               files={"file": ("room.tfroom", got.content, "application/zip")})
    assert done.status_code == 201, done.text
    imported = done.json()["rooms"][0]
    assert imported["members"] == 1 and sorted(imported["skipped_members"]) == sorted(
        [gm.user["username"], alice.user["username"]])
    snap = await api.snapshot(carol, imported["id"])
    assert snap["room"]["gm_id"] == carol.id and [p["user"]["id"] for p in snap["players"]] == [carol.id]
    assert [(t["x"], t["y"], t["hidden"]) for t in snap["tokens"]] == [(3.0, 4.0, True)]
    # the whisper's people are not mapped over HTTP: it stays in the log, seen by nobody here
    assert snap["messages"] == []
    assert (await api.http.get(snap["assets"][0]["url"])).status_code == 200
    nope = await api.http.get(f"/api/rooms/{imported['id']}", headers=gm.headers)
    assert nope.status_code == 403

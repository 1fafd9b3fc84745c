"""Bad input gets a clear error code, the socket stays open, and stored state does not change."""

from __future__ import annotations

import json

import httpx
import pytest
import websockets

from tests.support.client import Api, Ws, png_bytes


@pytest.fixture
async def table(api: Api) -> dict:
    gm, alice, stranger = await api.register("gm"), await api.register("al"), await api.register("st")
    room = await api.room(gm, alice)
    asset = await api.asset(gm, room["id"])
    gm_ws = await api.ws(gm)
    await gm_ws.request("join", room_id=room["id"])
    token = (await gm_ws.request("token.add", room_id=room["id"], asset_id=asset["id"], x=5, y=5))["token"]
    ws = await api.ws(alice)
    await ws.request("join", room_id=room["id"])
    yield {"gm": gm, "alice": alice, "stranger": stranger, "room": room, "asset": asset, "token": token,
           "ws": ws, "gm_ws": gm_ws}
    await ws.close()
    await gm_ws.close()


def _frame(room_id: str, token_id: str, asset_id: str) -> list[tuple[str, str | dict, str]]:
    r, t = room_id, token_id
    return [
        ("malformed JSON", "{not json", "bad_json"),
        ("not an object", "[1, 2, 3]", "invalid_message"),
        ("no type", {"room_id": r}, "invalid_message"),
        ("unknown type", {"type": "token.teleport", "room_id": r}, "unknown_type"),
        ("wrong field type", {"type": "token.move", "room_id": r, "token_id": t, "x": "left", "y": 1},
         "invalid_message"),
        ("missing field", {"type": "token.move", "room_id": r, "token_id": t, "x": 1}, "invalid_message"),
        ("x out of range", {"type": "token.move", "room_id": r, "token_id": t, "x": 1e12, "y": 1}, "invalid_message"),
        ("scale out of range", {"type": "token.update", "room_id": r, "token_id": t, "scale": 0}, "invalid_message"),
        ("negative since", {"type": "join", "room_id": r, "since": -1}, "invalid_message"),
        ("empty chat", {"type": "chat.send", "room_id": r, "text": ""}, "invalid_message"),
        ("chat too long", {"type": "chat.send", "room_id": r, "text": "x" * 5000}, "invalid_message"),
        ("bad dice", {"type": "dice.roll", "room_id": r, "notation": "1d6; DROP TABLE users"}, "bad_dice"),
        ("too many dice", {"type": "dice.roll", "room_id": r, "notation": "101d6"}, "bad_dice"),
        ("too many sides", {"type": "dice.roll", "room_id": r, "notation": "1d1001"}, "bad_dice"),
        ("GM's token", {"type": "token.move", "room_id": r, "token_id": t, "x": 0, "y": 0}, "not_token_owner"),
        ("GM's token removed", {"type": "token.remove", "room_id": r, "token_id": t}, "not_token_owner"),
        ("unknown token", {"type": "token.move", "room_id": r, "token_id": "00000000-0000-0000-0000-000000000000",
                           "x": 0, "y": 0}, "token_not_found"),
        ("SQL-looking id", {"type": "token.move", "room_id": r, "token_id": "1' OR '1'='1", "x": 0, "y": 0},
         "invalid_message"),
        ("SQL-looking asset", {"type": "token.add", "room_id": r, "asset_id": "' OR 1=1 --", "x": 0, "y": 0},
         "invalid_message"),
        ("asset of nowhere", {"type": "token.add", "room_id": r, "asset_id": "00000000-0000-0000-0000-000000000001",
                              "x": 0, "y": 0}, "asset_not_found"),
        ("room not joined", {"type": "chat.send", "room_id": "00000000-0000-0000-0000-000000000000", "text": "hi"},
         "not_joined"),
        ("not a member", {"type": "join", "room_id": "00000000-0000-0000-0000-000000000000"}, "room_not_found"),
        ("nothing to update", {"type": "token.update", "room_id": r, "token_id": t}, "nothing_to_change"),
    ]


async def test_bad_socket_frames(api: Api, table: dict) -> None:
    ws: Ws = table["ws"]
    before = await api.snapshot(table["gm"], table["room"]["id"])
    for i, (label, frame, code) in enumerate(_frame(table["room"]["id"], table["token"]["id"], table["asset"]["id"])):
        if isinstance(frame, dict):
            msg_id = f"bad-{i}"
            frame = json.dumps({**frame, "id": msg_id})
        else:
            msg_id = None
        await ws.send_raw(frame)
        reply = await (ws.next_event("error") if msg_id is None else _reply(ws, msg_id))
        assert reply["type"] == "error" and reply["code"] == code, (label, reply)
        assert reply["message"], label
    pong = await ws.request("ping")
    assert pong["type"] == "pong", "the socket stays open after bad input"
    after = await api.snapshot(table["gm"], table["room"]["id"])
    assert after["tokens"] == before["tokens"] and after["room"]["version"] == before["room"]["version"]
    assert after["messages"] == before["messages"]


async def _reply(ws: Ws, msg_id: str) -> dict:
    while True:
        msg = await ws.next_event()
        if msg.get("id") == msg_id:
            return msg


async def test_non_member_cannot_join(api: Api, table: dict) -> None:
    ws = await api.ws(table["stranger"])
    reply = await ws.request("join", room_id=table["room"]["id"])
    assert reply["type"] == "error" and reply["code"] == "not_member"
    await ws.close()


async def test_stale_if_version_conflicts_and_changes_nothing(api: Api, table: dict) -> None:
    gm_ws: Ws = table["gm_ws"]
    t = table["token"]
    ok = await gm_ws.request("token.update", room_id=table["room"]["id"], token_id=t["id"], rotation=45,
                             if_version=t["version"])
    assert ok["type"] == "ack" and ok["token"]["version"] == t["version"] + 1
    stale = await gm_ws.request("token.move", room_id=table["room"]["id"], token_id=t["id"], x=99, y=99,
                                if_version=t["version"])
    assert stale["type"] == "error" and stale["code"] == "conflict"
    snap = await api.snapshot(table["gm"], table["room"]["id"])
    assert (snap["tokens"][0]["x"], snap["tokens"][0]["rotation"]) == (5, 45)


async def test_oversize_frame_closes_1009(api: Api, table: dict) -> None:
    ws = await api.ws(table["alice"])
    await ws.send_raw(json.dumps({"type": "chat.send", "room_id": table["room"]["id"], "text": "x" * (1 << 20)}))
    assert await ws.closed_with() == 1009
    snap = await api.snapshot(table["gm"], table["room"]["id"])
    assert all(len(m["text"]) < 5000 for m in snap["messages"])


async def test_flooding_gets_rate_limited_then_closed(api: Api, table: dict) -> None:
    ws = await api.ws(table["alice"])
    codes = []
    try:
        for _ in range(3000):
            await ws.send("ping")
    except websockets.ConnectionClosed:
        pass
    close = await ws.closed_with()
    while not ws.events.empty():
        codes.append(ws.events.get_nowait().get("code"))
    assert "rate_limited" in codes
    assert close == 1008


async def test_flooding_with_drag_frames_gets_rate_limited_then_closed(api: Api, table: dict) -> None:
    """Drag frames are handled as they arrive (not through the socket's reader), under the same limit."""
    gm_ws: Ws = table["gm_ws"]
    frame = json.dumps({"type": "token.move", "room_id": table["room"]["id"], "token_id": table["token"]["id"],
                        "x": 1, "y": 1, "preview": True})
    try:
        for _ in range(3000):
            await gm_ws.send_raw(frame)
    except websockets.ConnectionClosed:
        pass
    close = await gm_ws.closed_with()
    codes = [e.get("code") for e in gm_ws.drain()]
    assert "rate_limited" in codes
    assert close == 1008
    assert (await table["ws"].next_event("token.moving"))["x"] == 1  # the first ones went through


async def test_bad_tokens_on_the_socket_close_4401(api: Api, table: dict) -> None:
    for token in (None, "garbage"):
        ws = await Ws.connect(api.ws_url, token)
        assert await ws.closed_with() == 4401
    await api.http.post("/api/auth/logout", headers=table["stranger"].headers)
    revoked = await Ws.connect(api.ws_url, table["stranger"].token)
    assert await revoked.closed_with() == 4401


async def test_bad_uploads(api: Api, table: dict) -> None:
    gm, room = table["gm"], table["room"]
    before = await api.snapshot(gm, room["id"])
    fake = await api.upload(gm, room["id"], b"just some text, not an image", filename="sneaky.png")
    assert fake.status_code == 415 and fake.json()["error"]["code"] == "unsupported_image"
    big = await api.upload(gm, room["id"], png_bytes() + b"\0" * (2 << 20))
    assert big.status_code == 413
    bmp = await api.http.post(f"/api/rooms/{room['id']}/assets", headers=gm.headers,
                              files={"file": ("x.bmp", _bmp(), "image/bmp")})
    assert bmp.status_code == 415
    truncated = await api.upload(gm, room["id"], png_bytes()[:60])
    assert truncated.status_code in (415, 422)
    stranger = await api.upload(table["stranger"], room["id"])
    assert stranger.status_code == 403
    nofile = await api.http.post(f"/api/rooms/{room['id']}/assets", headers=gm.headers, data={"name": "x"})
    assert nofile.status_code == 422
    after = await api.snapshot(gm, room["id"])
    assert after["assets"] == before["assets"] and after["room"]["version"] == before["room"]["version"]


def _bmp() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "BMP")
    return buf.getvalue()


async def test_http_errors_have_the_error_shape(api: Api, table: dict) -> None:
    gm = table["gm"]
    for method, url, kwargs, status in [
        ("GET", "/api/nowhere", {}, 404),
        ("POST", "/api/rooms", {"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", "/api/rooms", {"json": {"name": "x", "surprise": 1}}, 422),
        ("PATCH", f"/api/rooms/{table['room']['id']}/tokens/{table['token']['id']}", {"json": {"x": "far"}}, 422),
        ("PATCH", f"/api/rooms/{table['room']['id']}/tokens/{table['token']['id']}", {"json": {"x": 1e99}}, 422),
        ("PUT", "/api/rooms", {}, 405),
    ]:
        headers = {**gm.headers, **kwargs.pop("headers", {})}
        r = await api.http.request(method, url, headers=headers, **kwargs)
        assert r.status_code == status, (method, url, r.text)
        err = r.json()["error"]
        assert err["code"] and err["message"] and "Traceback" not in r.text
    assert isinstance(api.http, httpx.AsyncClient)

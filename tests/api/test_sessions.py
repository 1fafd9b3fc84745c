"""Revoking a session closes its sockets (4401); the page's socket ticket; secrets kept out of the
logs. Both backends (the `server` fixture), embedded mode; tests/scaleout/test_revocation.py
checks the same across instances."""

from __future__ import annotations

import uuid
from pathlib import Path

import websockets

from tests.support.accounts import login, make_admin, ticket
from tests.support.client import Api, Player, Ws
from tests.support.cluster import free_port
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until


async def _pong(ws: Ws) -> bool:
    reply = await ws.request("ping")
    return reply["type"] == "pong"


async def _two_sessions(api: Api) -> tuple[Player, Player]:
    first = await api.register("ses")
    return first, await login(api, first.user["username"])


async def test_logout_closes_the_sockets_of_that_session_only(api: Api) -> None:
    first, second = await _two_sessions(api)
    by_header = await api.ws(first)
    by_ticket = await Ws.connect(f"{api.ws_url}?ticket={await ticket(api, first)}", None)
    by_query = await Ws.connect(f"{api.ws_url}?token={first.token}", None)
    other = await api.ws(second)
    room = await api.room(first)
    asset = await api.asset(first, room["id"])
    assert (await by_header.request("join", room_id=room["id"]))["type"] == "ack"
    token = (await by_header.request("token.add", room_id=room["id"], asset_id=asset["id"], x=1, y=1))["token"]

    out = await api.http.post("/api/auth/logout", headers=first.headers)
    assert out.status_code == 204
    assert await by_header.closed_with(5) == 4401
    assert await by_ticket.closed_with(5) == 4401
    assert await by_query.closed_with(5) == 4401
    assert await _pong(other), "the user's other session keeps its socket"
    snap = await api.snapshot(second, room["id"])
    assert [(t["x"], t["y"]) for t in snap["tokens"] if t["id"] == token["id"]] == [(1, 1)]
    again = await Ws.connect(api.ws_url, first.token)
    assert await again.closed_with(5) == 4401
    await other.close()


async def test_password_change_revokes_every_other_session(api: Api) -> None:
    first, second = await _two_sessions(api)
    mine, theirs = await api.ws(first), await api.ws(second)
    wrong = await api.http.post("/api/users/me/password", headers=first.headers,
                                json={"current_password": "not it at all", "new_password": "a new password"})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_password"
    short = await api.http.post("/api/users/me/password", headers=first.headers,
                                json={"current_password": "correct horse", "new_password": "x"})
    assert short.status_code == 422
    assert await _pong(theirs), "a refused change revokes nothing"

    changed = await api.http.post("/api/users/me/password", headers=first.headers,
                                  json={"current_password": "correct horse", "new_password": "battery staple"})
    assert changed.status_code == 204, changed.text
    assert await theirs.closed_with(5) == 4401
    assert await _pong(mine), "the session that changed the password stays"
    assert (await api.http.get("/api/users/me", headers=second.headers)).status_code == 401
    assert (await api.http.get("/api/users/me", headers=first.headers)).status_code == 200
    name = first.user["username"]
    old = await api.http.post("/api/auth/login", json={"username": name, "password": "correct horse"})
    assert old.status_code == 401
    await login(api, name, "battery staple")
    await mine.close()


async def test_admin_disable_closes_every_socket_and_refuses_login(api: Api, server: ServerProcess) -> None:
    admin = await make_admin(api, server.env)
    first, second = await _two_sessions(api)
    socks = [await api.ws(first), await api.ws(second)]
    bystander = await api.register("by")
    theirs = await api.ws(bystander)

    refused = await api.http.post(f"/api/admin/users/{first.id}/disable", headers=bystander.headers)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_admin"
    unknown = await api.http.post(f"/api/admin/users/{uuid.uuid4()}/disable", headers=admin.headers)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "user_not_found"
    itself = await api.http.post(f"/api/admin/users/{admin.id}/disable", headers=admin.headers)
    assert itself.status_code == 409 and itself.json()["error"]["code"] == "cannot_disable_self"

    r = await api.http.post(f"/api/admin/users/{first.id}/disable", headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["disabled"] is True and r.json()["sessions_revoked"] == 2
    for sock in socks:
        assert await sock.closed_with(5) == 4401
    assert await _pong(theirs), "other users keep their sockets"
    assert (await api.http.get("/api/users/me", headers=first.headers)).status_code == 401
    name = first.user["username"]
    blocked = await api.http.post("/api/auth/login", json={"username": name, "password": "correct horse"})
    assert blocked.status_code == 403 and blocked.json()["error"]["code"] == "user_disabled"
    wrong = await api.http.post("/api/auth/login", json={"username": name, "password": "wrong password"})
    assert wrong.status_code == 401, "a wrong password does not reveal that the account is disabled"

    back = await api.http.post(f"/api/admin/users/{first.id}/enable", headers=admin.headers)
    assert back.status_code == 200 and back.json()["disabled"] is False
    again = await login(api, name)
    assert await _pong(await api.ws(again))
    await theirs.close()


async def test_tickets_are_single_use_and_bound_to_a_live_session(api: Api) -> None:
    who, other = await _two_sessions(api)
    one = await ticket(api, who)
    ws = await Ws.connect(f"{api.ws_url}?ticket={one}", None)
    assert await _pong(ws)
    reused = await Ws.connect(f"{api.ws_url}?ticket={one}", None)
    assert await reused.closed_with(5) == 4401
    assert (await reused.next_event("error"))["code"] == "invalid_ticket"
    for bad in ("nope", "x" * 500, ""):
        sock = await Ws.connect(f"{api.ws_url}?ticket={bad}", None)
        assert await sock.closed_with(5) == 4401, bad
    unused = await ticket(api, other)
    await api.http.post("/api/auth/logout", headers=other.headers)
    late = await Ws.connect(f"{api.ws_url}?ticket={unused}", None)
    assert await late.closed_with(5) == 4401, "a ticket of a revoked session is worth nothing"
    assert (await api.http.post("/api/auth/ws-ticket")).status_code == 401
    await ws.close()


async def test_secrets_never_reach_the_log(api: Api, server: ServerProcess) -> None:
    who = await api.register("log")
    one = await ticket(api, who)
    by_query = await Ws.connect(f"{api.ws_url}?token={who.token}&x=1", None)
    by_ticket = await Ws.connect(f"{api.ws_url}?ticket={one}", None)
    assert await _pong(by_query) and await _pong(by_ticket)
    await api.http.get(f"/api/users/me?token={who.token}", headers={"Authorization": f"Bearer {who.token}"})
    # uvicorn logs every accepted handshake with its path and query string: wait for ours.
    await wait_until(lambda: server.log_path.read_text().count("[redacted]") >= 2, what="the handshake log lines")
    text = server.log_path.read_text()
    assert who.token not in text and one not in text
    assert "/ws?token=[redacted]&x=1" in text and "/ws?ticket=[redacted]" in text
    await by_query.close()
    await by_ticket.close()


async def test_cookie_handshake_from_a_foreign_origin_is_refused(api: Api, server: ServerProcess) -> None:
    who = await api.register("org")
    cookie = {"Cookie": f"tableforge_session={who.token}"}

    async def open_with(origin: str | None, headers: dict[str, str]) -> Ws:
        sock = await websockets.connect(server.ws_url, additional_headers=headers, origin=origin)  # type: ignore[arg-type]
        return Ws(sock)

    evil = await open_with("http://evil.example", cookie)
    assert await evil.closed_with(5) == 1008
    assert (await evil.next_event("error"))["code"] == "origin_not_allowed"
    for origin in (server.base_url, None):  # the page's own origin (its Host); no Origin: not a browser
        own = await open_with(origin, cookie)
        assert await _pong(own), origin
        await own.close()
    # A bearer header or a ticket is a secret the page holds: no Origin check (non-browser clients).
    bearer = await open_with("http://evil.example", who.headers)
    assert await _pong(bearer)
    await bearer.close()


async def test_usernames_are_unique_regardless_of_case(api: Api, unique: str) -> None:
    r = await api.http.post("/api/auth/register", json={"username": f"Bob{unique}", "password": "correct horse"})
    assert r.status_code == 201
    for name in (f"bob{unique}", f"BOB{unique}", f"bOb{unique}"):
        dup = await api.http.post("/api/auth/register", json={"username": name, "password": "correct horse"})
        assert dup.status_code == 409 and dup.json()["error"]["code"] == "username_taken", name
    # Login is case-insensitive; the account keeps the spelling it was made with.
    other = await api.http.post("/api/auth/login", json={"username": f"BOB{unique}", "password": "correct horse"})
    assert other.status_code == 200 and other.json()["user"]["username"] == f"Bob{unique}"
    api.http.cookies.clear()


async def test_cookies_are_not_secure_over_plain_http_even_if_a_stranger_says_https(tmp_path: Path) -> None:
    # Its own server: the shared one trusts loopback as a proxy (the guessing tests need X-Forwarded-For).
    server = ServerProcess(free_port(), {"TABLEFORGE_DATA_DIR": str(tmp_path), "TABLEFORGE_SEED_CATALOG": "false"},
                           name="untrusted")
    server.start()
    try:
        async with Api(server.base_url) as api:
            r = await api.http.post("/api/auth/register", headers={"X-Forwarded-Proto": "https"},
                                    json={"username": f"ck{uuid.uuid4().hex[:8]}", "password": "correct horse"})
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    finally:
        server.stop()

"""Settings-dependent account rules, on servers started with them: registration by invite or
closed, Secure cookies (public https URL, or a trusted proxy's X-Forwarded-Proto) and the
allow-list of origins for cookie-authenticated sockets."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import websockets

from tests.conftest import free_port
from tests.support.accounts import make_admin
from tests.support.client import Api, Ws
from tests.support.server import ServerProcess


def _server(tmp_path_factory: pytest.TempPathFactory, name: str, **env: str) -> ServerProcess:
    env = {"TABLEFORGE_DATA_DIR": str(tmp_path_factory.mktemp(name)), "TABLEFORGE_SEED_CATALOG": "false", **env}
    return ServerProcess(free_port(), env, name=name)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def invite_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[ServerProcess]:
    """Registration by invite, behind a trusted proxy (loopback), with one more allowed origin."""
    env = {"TABLEFORGE_REGISTRATION": "invite", "TABLEFORGE_TRUSTED_PROXIES": "127.0.0.1/32, ::1",
           "TABLEFORGE_ALLOWED_ORIGINS": "https://friend.example, http://other.example:8080"}
    if request.param == "postgres":
        from tests.support.services import require_postgres, temp_database

        require_postgres()
        with temp_database() as url:
            srv = _server(tmp_path_factory, "invite-pg", TABLEFORGE_DATABASE_URL=url, **env)
            srv.start()
            yield srv
            srv.stop()
        return
    srv = _server(tmp_path_factory, "invite-sqlite", **env)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def closed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = _server(tmp_path_factory, "closed", TABLEFORGE_REGISTRATION="closed",
                  TABLEFORGE_PUBLIC_URL="https://table.example/")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
async def invite_api(invite_server: ServerProcess) -> AsyncIterator[Api]:
    async with Api(invite_server.base_url) as client:
        yield client


def _new_name() -> str:
    return f"inv{uuid.uuid4().hex[:10]}"


async def test_invite_mode(invite_api: Api, invite_server: ServerProcess) -> None:
    api = invite_api
    body = {"username": _new_name(), "password": "correct horse"}
    none = await api.http.post("/api/auth/register", json=body)
    assert none.status_code == 403 and none.json()["error"]["code"] == "invite_required"
    bogus = await api.http.post("/api/auth/register", json={**body, "invite_code": "not-a-code"})
    assert bogus.status_code == 403 and bogus.json()["error"]["code"] == "invite_invalid"

    admin = await make_admin(api, invite_server.env)
    made = await api.http.post("/api/admin/invites", json={"uses": 2, "expires_in_hours": 1}, headers=admin.headers)
    assert made.status_code == 201, made.text
    invite = made.json()
    assert invite["uses"] == 2 and invite["used"] == 0 and invite["code"] and invite["expires_at"]
    code = invite["code"]

    first = await api.http.post("/api/auth/register", json={**body, "invite_code": code})
    assert first.status_code == 201, first.text
    taken = await api.http.post("/api/auth/register", json={**body, "invite_code": code})
    assert taken.status_code == 409, "a taken name does not use the invite up"
    second = await api.http.post("/api/auth/register", json={"username": _new_name(), "password": "correct horse",
                                                            "invite_code": code})
    assert second.status_code == 201
    spent = await api.http.post("/api/auth/register", json={"username": _new_name(), "password": "correct horse",
                                                           "invite_code": code})
    assert spent.status_code == 403 and spent.json()["error"]["code"] == "invite_invalid"

    listed = await api.http.get("/api/admin/invites", headers=admin.headers)
    mine = [i for i in listed.json()["invites"] if i["id"] == invite["id"]]
    assert mine and mine[0]["used"] == 2 and "code" not in mine[0]

    other = (await api.http.post("/api/admin/invites", headers=admin.headers)).json()
    assert other["uses"] == 1
    gone = await api.http.delete(f"/api/admin/invites/{other['id']}", headers=admin.headers)
    assert gone.status_code == 204
    revoked = await api.http.post("/api/auth/register", json={"username": _new_name(), "password": "correct horse",
                                                             "invite_code": other["code"]})
    assert revoked.status_code == 403 and revoked.json()["error"]["code"] == "invite_invalid"
    missing = await api.http.delete(f"/api/admin/invites/{uuid.uuid4()}", headers=admin.headers)
    assert missing.status_code == 404
    player = await api.http.post("/api/auth/login", json=body)
    api.http.cookies.clear()
    denied = await api.http.post("/api/admin/invites", headers={"Authorization": f"Bearer {player.json()['token']}"})
    assert denied.status_code == 403
    bad = await api.http.post("/api/admin/invites", json={"uses": 0}, headers=admin.headers)
    assert bad.status_code == 422


async def test_trusted_proxy_https_makes_cookies_secure(invite_api: Api, invite_server: ServerProcess) -> None:
    admin = await make_admin(invite_api, invite_server.env)
    name = admin.user["username"]
    plain = await invite_api.http.post("/api/auth/login", json={"username": name, "password": "admin-password"})
    assert "secure" not in plain.headers["set-cookie"].lower()
    behind = await invite_api.http.post("/api/auth/login", json={"username": name, "password": "admin-password"},
                                        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
    invite_api.http.cookies.clear()
    assert "; secure" in behind.headers["set-cookie"].lower()


async def test_allowed_origins_may_open_cookie_sockets(invite_api: Api, invite_server: ServerProcess) -> None:
    admin = await make_admin(invite_api, invite_server.env)
    cookie = {"Cookie": f"tableforge_session={admin.token}"}
    for origin, code in (("https://friend.example", None), ("HTTP://OTHER.example:8080", None),
                         ("http://other.example", 1008), ("https://friend.example.evil", 1008), ("null", 1008)):
        sock = Ws(await websockets.connect(invite_server.ws_url, additional_headers=cookie,
                                           origin=origin))  # type: ignore[arg-type]
        if code is None:
            assert (await sock.request("ping"))["type"] == "pong", origin
            await sock.close()
        else:
            assert await sock.closed_with(5) == code, origin


async def test_closed_registration_and_public_https_url(closed_server: ServerProcess) -> None:
    async with Api(closed_server.base_url) as api:
        r = await api.http.post("/api/auth/register", json={"username": _new_name(), "password": "correct horse"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "registration_closed"
        # The operator's way still works; the public URL is https, so the cookie is Secure.
        admin = await make_admin(api, closed_server.env)
        login = await api.http.post("/api/auth/login", json={"username": admin.user["username"],
                                                             "password": "admin-password"})
        assert "; secure" in login.headers["set-cookie"].lower()
        api.http.cookies.clear()
        # The public origin is the one allowed origin for cookie sockets (besides the Host's own).
        cookie = {"Cookie": f"tableforge_session={admin.token}"}
        ok = Ws(await websockets.connect(closed_server.ws_url, additional_headers=cookie,
                                         origin="https://table.example"))  # type: ignore[arg-type]
        assert (await ok.request("ping"))["type"] == "pong"
        await ok.close()

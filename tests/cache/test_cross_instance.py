"""The shared cache across real server processes (PostgreSQL + Redis), and Redis outages.

Two instances share the database and Redis; every read on B right after an acked write on A
sees the write (tier 1 of B is dropped by A's invalidation before A answers). A Redis that is
unreachable, or that goes away and comes back, never fails a request.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.support.client import Api, png_bytes
from tests.support.cluster import Cluster
from tests.support.private_redis import PrivateRedis
from tests.support.server import ServerProcess
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def pair(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(2, pg_url, redis_url, tmp_path_factory.mktemp("cache-pair")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def ab(pair: Cluster) -> AsyncIterator[tuple[Api, Api]]:
    async with Api(pair.servers[0].base_url) as a, Api(pair.servers[1].base_url) as b:
        yield a, b


def _system(name: str) -> dict[str, Any]:
    return {"name": name, "description": "v0", "category": "fantasy", "complexity": "beginner",
            "is_public": True, "template": {"dice_presets": [{"label": "d20", "notation": "1d20"}]}}


async def test_a_system_changed_on_a_is_read_new_on_b_at_once(ab: tuple[Api, Api]) -> None:
    a, b = ab
    owner = await a.register("owner")
    marker = f"x{uuid.uuid4().hex[:8]}"
    made = (await a.http.post("/api/systems", headers=owner.headers, json=_system(f"{marker} 0"))).json()
    path = f"/api/systems/{made['id']}"
    for i in range(1, 6):
        for _ in range(2):  # the second read on B is a tier-1 hit there
            assert (await b.http.get(path)).json()["description"] == f"v{i - 1}"
            page = (await b.http.get("/api/systems", params={"search": marker})).json()
            assert [s["description"] for s in page["systems"]] == [f"v{i - 1}"]
        r = await a.http.patch(path, headers=owner.headers, json={"description": f"v{i}"})
        assert r.status_code == 200
        assert (await b.http.get(path)).json()["description"] == f"v{i}"
        page = (await b.http.get("/api/systems", params={"search": marker})).json()
        assert [s["description"] for s in page["systems"]] == [f"v{i}"]
    assert (await a.http.delete(path, headers=owner.headers)).status_code == 204
    assert (await b.http.get(path)).status_code == 404
    assert (await b.http.get("/api/systems", params={"search": marker})).json()["total"] == 0


async def test_logout_on_a_refuses_the_token_on_b_at_once(ab: tuple[Api, Api]) -> None:
    a, b = ab
    for _ in range(3):
        user = await a.register("sess")
        for _ in range(2):  # cached on B
            assert (await b.http.get("/api/users/me", headers=user.headers)).status_code == 200
        assert (await a.http.post("/api/auth/logout", headers=user.headers)).status_code == 204
        a.http.cookies.clear()
        refused = await b.http.get("/api/users/me", headers=user.headers)
        assert refused.status_code == 401, refused.text
        assert (await a.http.get("/api/users/me", headers=user.headers)).status_code == 401


async def test_room_changes_on_a_are_read_on_b_at_once(ab: tuple[Api, Api]) -> None:
    a, b = ab
    gm, player = await a.register("gm"), await a.register("pl")
    room = await a.room(gm, player)
    snap = await b.http.get(f"/api/rooms/{room['id']}", headers=player.headers)
    etag = snap.headers["etag"]
    assets = f"/api/rooms/{room['id']}/assets"
    assert (await b.http.get(assets, headers=player.headers)).json()["assets"] == []
    uploaded = []
    for color in ("red", "blue"):
        asset = (await a.upload(gm, room["id"], png_bytes(color=color))).json()
        uploaded.append(asset["id"])
        listed = (await b.http.get(assets, headers=player.headers)).json()["assets"]
        assert [x["id"] for x in listed] == uploaded
    token = await a.http.post(f"/api/rooms/{room['id']}/tokens", headers=gm.headers,
                              json={"asset_id": uploaded[0], "x": 5, "y": 6})
    assert token.status_code == 201
    fresh = await b.http.get(f"/api/rooms/{room['id']}", headers={**player.headers, "If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.json()["room"]["version"] == token.json()["room_version"]
    assert [t["id"] for t in fresh.json()["tokens"]] == [token.json()["id"]]
    assert (await a.http.delete(f"/api/assets/{uploaded[1]}", headers=gm.headers)).status_code == 204
    listed = (await b.http.get(assets, headers=player.headers)).json()["assets"]
    assert [x["id"] for x in listed] == uploaded[:1]


async def _exercise(api: Api, marker: str) -> None:
    """A bit of everything, each answered normally."""
    user = await api.register("deg")
    assert (await api.http.get("/api/users/me", headers=user.headers)).status_code == 200
    catalog = await api.http.get("/api/systems")
    assert catalog.status_code == 200 and catalog.json()["total"] >= 3
    made = await api.http.post("/api/systems", headers=user.headers, json=_system(f"{marker} {uuid.uuid4().hex[:6]}"))
    assert made.status_code == 201
    assert (await api.http.get(f"/api/systems/{made.json()['id']}")).status_code == 200
    found = (await api.http.get("/api/systems", params={"search": made.json()["name"]})).json()
    assert found["total"] == 1  # the write is visible at once, Redis or not
    room = await api.room(user)
    assert (await api.http.get(f"/api/rooms/{room['id']}", headers=user.headers)).status_code == 200
    assert (await api.http.post("/api/auth/logout", headers=user.headers)).status_code == 204
    api.http.cookies.clear()
    assert (await api.http.get("/api/users/me", headers=user.headers)).status_code == 401


async def _cache_check(api: Api) -> dict[str, Any]:
    ready = (await api.http.get("/ready")).json()
    return ready["checks"]["cache"]  # type: ignore[no-any-return]


async def test_unreachable_redis_never_fails_a_request(tmp_path: Path) -> None:
    server = ServerProcess(free_port(), {"TABLEFORGE_DATA_DIR": str(tmp_path),
                                         "TABLEFORGE_REDIS_URL": "redis://127.0.0.1:1/0"}, name="no-redis")
    server.start()
    try:
        async with Api(server.base_url) as api:
            await _exercise(api, "down")
            ready = await api.http.get("/ready")
            assert ready.status_code == 200 and ready.json()["status"] == "degraded"
            assert ready.json()["checks"]["cache"]["status"] == "degraded"
            assert ready.json()["checks"]["cache"]["redis"] in ("down", "recovering")
    finally:
        server.stop()


async def test_the_cache_comes_back_when_redis_does(tmp_path: Path) -> None:
    store = PrivateRedis(tmp_path)
    store.start()
    server = ServerProcess(free_port(), {"TABLEFORGE_DATA_DIR": str(tmp_path / "data"),
                                         "TABLEFORGE_REDIS_URL": store.url}, name="flaky")
    try:
        server.start()
        async with Api(server.base_url) as api:
            assert (await _cache_check(api))["status"] == "ok"
            await _exercise(api, "up")
            assert store.keys(), "the cache stores values in Redis while it is up"

            store.stop()
            await _exercise(api, "gone")  # every request still answered, from the database
            await eventually(lambda: _is(api, "degraded"), 15, "/ready shows the cache degraded", poll=0.2)
            await _exercise(api, "stilldown")

            store.start()  # an empty Redis on the same port
            await eventually(lambda: _is(api, "ok"), 30, "/ready shows the cache back", poll=0.2)
            await _exercise(api, "back")
            assert store.keys(), "values are stored in Redis again"
            body = await api.http.get("/api/systems")
            assert body.status_code == 200
    finally:
        server.stop()
        store.stop()


async def _is(api: Api, status: str) -> bool:
    try:
        return (await _cache_check(api))["status"] == status
    except httpx.HTTPError:
        return False

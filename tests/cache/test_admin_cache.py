"""GET /api/admin/cache/stats and POST /api/admin/cache/invalidate, in process (the real app)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Mount

from tableforge.api.app import create_app
from tableforge.api.routes import admin_cache
from tableforge.config import load_settings
from tableforge.services import users
from tableforge.services.runtime import Runtime


class App:
    def __init__(self, app: FastAPI, http: httpx.AsyncClient) -> None:
        self.app = app
        self.http = http

    @property
    def rt(self) -> Runtime:
        return self.app.state.runtime  # type: ignore[no-any-return]

    async def user(self, *, admin: bool) -> dict[str, str]:
        user = await users.create_user(self.rt, f"u{uuid.uuid4().hex[:10]}", "correct horse", is_admin=admin)
        return {"Authorization": f"Bearer {await users.new_session(self.rt, user['id'])}"}


async def _app(tmp_path: Path, **settings: Any) -> AsyncIterator[App]:
    # The start-up warm_catalog job would load the catalog while a test counts the cache's loads.
    app = create_app(load_settings(data_dir=tmp_path, log_json=False, log_level="WARNING",
                                   maintenance_warm_catalog_schedule="off", **settings))
    if not any(getattr(r, "path", None) == "/api/admin/cache/stats" for r in app.routes):
        # Until app.py's router tuple includes it: add it ahead of the static mount at "/".
        app.include_router(admin_cache.router)
        routes = app.router.routes
        routes[:] = [r for r in routes if not isinstance(r, Mount)] + [r for r in routes if isinstance(r, Mount)]
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://app") as http:
        yield App(app, http)


@pytest.fixture
async def memory_app(tmp_path: Path) -> AsyncIterator[App]:
    async for app in _app(tmp_path):
        yield app


@pytest.fixture
async def redis_app(tmp_path: Path, redis_url: str) -> AsyncIterator[App]:
    async for app in _app(tmp_path, redis_url=redis_url, redis_namespace=f"t{uuid.uuid4().hex[:10]}"):
        yield app


async def test_admin_routes_refuse_non_admins(memory_app: App) -> None:
    player = await memory_app.user(admin=False)
    for method, path, body in (("GET", "/api/admin/cache/stats", None),
                               ("POST", "/api/admin/cache/invalidate", {"pattern": "system:*"})):
        anonymous = await memory_app.http.request(method, path, json=body)
        assert anonymous.status_code == 401
        refused = await memory_app.http.request(method, path, json=body, headers=player)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_admin"


async def test_stats_show_hits_per_tier_and_kind(memory_app: App) -> None:
    admin = await memory_app.user(admin=True)
    systems = (await memory_app.http.get("/api/systems")).json()["systems"]
    for _ in range(3):
        await memory_app.http.get("/api/systems")
        await memory_app.http.get(f"/api/systems/{systems[0]['id']}")
    r = await memory_app.http.get("/api/admin/cache/stats", headers=admin)
    assert r.status_code == 200
    body = r.json()
    assert body["mode"] == "memory" and body["healthy"] is True and body["redis"] == {"enabled": False, "healthy": True}
    assert body["tiers"]["query"]["memory"]["hits"] >= 3
    assert body["tiers"]["system"]["memory"]["hits"] >= 2 and body["tiers"]["system"]["redis"]["misses"] >= 1
    assert body["cache"]["kinds"]["session"]["loads"] >= 1  # the admin's own token, on this request
    assert 0 < body["hit_rate"] <= 1
    memory = body["cache"]["memory"]
    assert {"size", "max_size", "evictions", "policy"} <= set(memory) and memory["size"] > 0
    assert body["cache"]["edge"] == {"enabled": False}


async def test_invalidate_by_pattern_and_bad_patterns(memory_app: App) -> None:
    admin = await memory_app.user(admin=True)
    system = (await memory_app.http.get("/api/systems")).json()["systems"][0]
    await memory_app.http.get(f"/api/systems/{system['id']}")
    loads = memory_app.rt.cache.stats()["kinds"]["system"]["loads"]
    r = await memory_app.http.post("/api/admin/cache/invalidate", json={"pattern": "system:*"}, headers=admin)
    assert r.status_code == 200 and r.json()["pattern"] == "system:*" and r.json()["removed"] >= 1
    await memory_app.http.get(f"/api/systems/{system['id']}")
    assert memory_app.rt.cache.stats()["kinds"]["system"]["loads"] == loads + 1  # really gone
    for bad in ({"pattern": ""}, {"pattern": "a b"}, {"pattern": "sys[tem"}, {"pattern": "x]"},
                {"pattern": "a\\*"}, {"pattern": "[[a]]"}, {"pattern": "x" * 300}, {"pattern": 5},
                {}, {"pattern": "a", "extra": 1}, {"pattern": "caf\u00e9"}):
        refused = await memory_app.http.post("/api/admin/cache/invalidate", json=bad, headers=admin)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["error"]["code"] == "validation_error"


async def test_stats_with_redis_show_its_memory_and_keys(redis_app: App) -> None:
    admin = await redis_app.user(admin=True)
    system = (await redis_app.http.get("/api/systems")).json()["systems"][0]
    await redis_app.http.get(f"/api/systems/{system['id']}")
    body = (await redis_app.http.get("/api/admin/cache/stats", headers=admin)).json()
    assert body["mode"] == "redis" and body["healthy"] is True
    redis = body["redis"]
    assert redis["enabled"] and redis["state"] == "up" and redis["subscribed"] is True
    assert redis["used_memory"] > 0 and redis["keys"] >= 2  # the system, a catalog page, sessions
    removed = await redis_app.http.post("/api/admin/cache/invalidate", json={"pattern": "catalog:*"}, headers=admin)
    assert removed.status_code == 200 and removed.json()["removed"] >= 1
    ready = (await redis_app.http.get("/ready")).json()
    assert ready["checks"]["cache"] == {"status": "ok", "mode": "redis", "redis": "up", "subscribed": True,
                                        "pending_invalidations": 0}

"""The login guess limits are one count across instances (Redis), and a Redis outage neither locks
everyone out nor answers 500: each instance counts in its own memory until Redis is back.
Two real instances, a private redis-server (stopped mid-test, never the shared one)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import redis.asyncio

from tests.support.cluster import Cluster
from tests.support.private_redis import PrivateRedis

PER_USER, PER_ADDRESS = 6, 20




async def _login(base_url: str, name: str, password: str, address: str) -> int:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        r = await http.post("/api/auth/login", json={"username": name, "password": password},
                            headers={"X-Forwarded-For": address})
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
        return r.status_code


async def _register(base_url: str) -> str:
    name = f"u{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        r = await http.post("/api/auth/register", json={"username": name, "password": "correct horse"})
        assert r.status_code == 201, r.text
    return name


async def test_login_limits_are_shared_and_survive_a_redis_outage(private_redis: PrivateRedis, pg_url: str,
                                                                  tmp_path: Path) -> None:
    cluster = Cluster(2, pg_url, private_redis.url, tmp_path / "data",
                      TABLEFORGE_LOGIN_MAX_FAILURES_PER_USER=str(PER_USER),
                      TABLEFORGE_LOGIN_MAX_FAILURES_PER_ADDRESS=str(PER_ADDRESS)).start()
    a, b = (s.base_url for s in cluster.servers)
    try:
        # One user's wrong passwords, alternating between the instances: one count.
        bob = await _register(a)
        statuses = [await _login((a, b)[i % 2], bob, "wrong", "10.1.0.1") for i in range(PER_USER)]
        assert statuses == [401] * PER_USER
        assert await _login(a, bob, "correct horse", "10.1.0.2") == 429
        assert await _login(b, bob, "correct horse", "10.1.0.3") == 429

        # Many at once, spread over both instances: exactly the limit is checked.
        carl = await _register(b)
        replies = await asyncio.gather(*(_login((a, b)[i % 2], carl, f"w{i}", "10.1.0.4") for i in range(30)))
        assert sorted(replies) == [401] * PER_USER + [429] * (30 - PER_USER)

        # The counters are under the deployment's namespace, without the usernames in clear.
        client = redis.asyncio.Redis.from_url(private_redis.url)
        try:
            keys = [k.decode() async for k in client.scan_iter(match="tableforge:*attempts:*")]
        finally:
            await client.aclose()
        assert keys and all(k.startswith(f"tableforge:{cluster.namespace}:attempts:login:") for k in keys)
        assert not any(bob in k or carl in k for k in keys)

        # Redis goes away: no 500, nobody locked out, and the limits still hold per instance.
        private_redis.stop()
        dan = await _register(a)
        assert await _login(a, dan, "correct horse", "10.1.0.5") == 200
        statuses = [await _login(a, dan, "wrong", "10.1.0.5") for _ in range(PER_USER + 1)]
        assert statuses == [401] * PER_USER + [429]
        async with httpx.AsyncClient(base_url=a) as http:
            errors = [line for line in (await http.get("/metrics")).text.splitlines()
                      if line.startswith("tableforge_attempt_tracker_redis_errors_total ")]
        assert errors and float(errors[0].split()[1]) > 0
    finally:
        cluster.stop()

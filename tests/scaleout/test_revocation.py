"""Revocation across instances (real processes, real Redis): a logout, a password change or an
admin's disable on one instance closes the sockets (4401) the user holds on every other one; a
socket ticket issued by one instance is redeemed once, on any instance."""

from __future__ import annotations

import hashlib

import redis.asyncio

from tests.support.accounts import login, make_admin, ticket
from tests.support.client import Api, Ws
from tests.support.cluster import Cluster


async def _alive(ws: Ws) -> bool:
    return (await ws.request("ping"))["type"] == "pong"


async def test_logout_on_one_instance_closes_the_session_on_the_other(pair: Cluster) -> None:
    a, b = pair.servers
    async with Api(a.base_url) as api_a, Api(b.base_url) as api_b:
        first = await api_a.register("xr")
        second = await login(api_a, first.user["username"])
        on_b = await Ws.connect(b.ws_url, first.token)
        on_b_ticket = await Ws.connect(f"{b.ws_url}?ticket={await ticket(api_a, first)}", None)
        other_session = await Ws.connect(b.ws_url, second.token)
        assert await _alive(on_b) and await _alive(on_b_ticket)

        assert (await api_a.http.post("/api/auth/logout", headers=first.headers)).status_code == 204
        assert await on_b.closed_with(5) == 4401
        assert await on_b_ticket.closed_with(5) == 4401
        assert await _alive(other_session)
        gone = await api_b.http.get("/api/users/me", headers=first.headers)
        assert gone.status_code == 401, "the session cache of the other instance was dropped too"
        await other_session.close()


async def test_password_change_and_disable_reach_every_instance(pair: Cluster) -> None:
    a, b = pair.servers
    async with Api(a.base_url) as api_a, Api(b.base_url) as api_b:
        first = await api_b.register("xp")
        second = await login(api_b, first.user["username"])
        keep = await Ws.connect(b.ws_url, first.token)
        lose = [await Ws.connect(a.ws_url, second.token), await Ws.connect(b.ws_url, second.token)]
        changed = await api_b.http.post("/api/users/me/password", headers=first.headers,
                                        json={"current_password": "correct horse", "new_password": "battery staple"})
        assert changed.status_code == 204
        for ws in lose:
            assert await ws.closed_with(5) == 4401
        assert await _alive(keep)

        admin = await make_admin(api_a, pair.env)
        also = await Ws.connect(a.ws_url, first.token)
        r = await api_a.http.post(f"/api/admin/users/{first.id}/disable", headers=admin.headers)
        assert r.status_code == 200 and r.json()["sessions_revoked"] == 1
        assert await keep.closed_with(5) == 4401
        assert await also.closed_with(5) == 4401


async def test_a_ticket_is_redeemed_once_on_any_instance(pair: Cluster, redis_url: str) -> None:
    a, b = pair.servers
    async with Api(a.base_url) as api_a:
        who = await api_a.register("xt")
        one = await ticket(api_a, who)
        # Stored hashed, under the deployment's prefix, expiring by itself (TABLEFORGE_WS_TICKET_SECONDS).
        client = redis.asyncio.Redis.from_url(redis_url)
        key = f"tableforge:{pair.namespace}:ws-ticket:{hashlib.sha256(one.encode()).hexdigest()}"
        ttl_ms = await client.pttl(key)
        assert 0 < ttl_ms <= 30_000, ttl_ms
        first = await Ws.connect(f"{b.ws_url}?ticket={one}", None)
        assert await _alive(first)
        again = await Ws.connect(f"{a.ws_url}?ticket={one}", None)
        assert await again.closed_with(5) == 4401
        assert (await again.next_event("error"))["code"] == "invalid_ticket"
        assert await client.exists(key) == 0, "redeeming removed it"
        await client.aclose()
        await first.close()

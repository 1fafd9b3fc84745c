"""Redis restarted mid-game: players on one instance keep playing, nothing acked is lost, and
everyone resyncs by version once Redis is back. Uses a private redis-server, never the shared one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.support.client import Api, Ws
from tests.support.cluster import Cluster
from tests.support.private_redis import PrivateRedis
from tests.support.waiting import eventually


async def _ready(url: str) -> str:
    async with httpx.AsyncClient() as http:
        return str((await http.get(f"{url}/ready")).json()["status"])


async def _wait_ready(urls: list[str], status: str, seconds: float) -> None:
    """Poll /ready (what a load balancer does) until every URL reports `status`."""
    async def all_report() -> bool:
        return [await _ready(u) for u in urls] == [status] * len(urls)

    await eventually(all_report, seconds, f"/ready {status} on {urls}", poll=0.2)


async def test_redis_restart_mid_game(private_redis: PrivateRedis, pg_url: str, tmp_path: Path) -> None:
    cluster = Cluster(2, pg_url, private_redis.url, tmp_path / "data").start()
    a_srv, b_srv = cluster.servers
    try:
        async with Api(a_srv.base_url) as api:
            gm, p1, p2 = await api.register("gm"), await api.register("p1"), await api.register("p2")
            room = await api.room(gm, p1, p2)
            asset = await api.asset(gm, room["id"])
            g = await Ws.connect(a_srv.ws_url, gm.token)
            same = await Ws.connect(a_srv.ws_url, p1.token)
            other = await Ws.connect(b_srv.ws_url, p2.token)
            for s in (g, same, other):
                await s.request("join", room_id=room["id"])
            token = (await g.request("token.add", room_id=room["id"], asset_id=asset["id"], x=0, y=0))["token"]
            seen = (await other.next_event("token.added"))["version"]

            private_redis.stop()
            await _wait_ready([a_srv.base_url], "degraded", 15)

            acked = []
            for i in range(5):  # players on the same instance keep playing
                ack = await g.request("token.move", room_id=room["id"], token_id=token["id"], x=i + 1, y=i + 1)
                assert ack["type"] == "ack", ack
                acked.append(ack["version"])
                moved = await same.next_event("token.moved")
                assert moved["version"] == ack["version"]

            private_redis.start()
            await _wait_ready([a_srv.base_url, b_srv.base_url], "ok", 20)

            after = await g.request("chat.send", room_id=room["id"], text="redis is back")
            # The player on the other instance gets everything after what it saw: either live (the hub
            # fills the gap from the stored history) or by resyncing with `since` (what a client does on a gap).
            got: list[int] = []
            async with asyncio.timeout(15):
                while not got or got[-1] < after["version"]:
                    event = await other.next_event()
                    if "version" in event:
                        got.append(event["version"])
            if got != list(range(seen + 1, after["version"] + 1)):
                resync = await other.request("join", room_id=room["id"], since=seen)
                got = [e["version"] for e in resync.get("events", [])]
                assert got[: after["version"] - seen] == list(range(seen + 1, after["version"] + 1))
            snap = await api.snapshot(p2, room["id"])
            assert (snap["tokens"][0]["x"], snap["tokens"][0]["version"]) == (5, 6), "no acked change lost"
            assert snap["messages"][-1]["text"] == "redis is back"
            for s in (g, same, other):
                await s.close()
    finally:
        cluster.stop()

"""`tableforge serve --workers N` in scale-out mode: each worker is an instance; metrics add up."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis.asyncio

from tests.support.client import Api, Ws
from tests.support.cluster import Cluster
from tests.support.metrics import sample
from tests.support.waiting import eventually


async def test_two_workers_serve_one_room_and_one_metrics_view(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    cluster = Cluster(1, pg_url, redis_url, tmp_path)
    server = cluster.servers[0]
    server.args = ["--workers", "2"]
    cluster.start()
    try:
        async with Api(server.base_url) as api:
            gm, pl = await api.register("gm"), await api.register("pl")
            room = await api.room(gm, pl)
            socks = [await Ws.connect(server.ws_url, p.token) for p in (gm, pl, gm, pl, gm, pl)]
            for s in socks:
                await s.request("join", room_id=room["id"])
            said = await socks[0].request("chat.send", room_id=room["id"], text="across workers")
            for s in socks[1:]:
                assert (await s.next_event("chat.message"))["version"] == said["version"]
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                async def both_workers_counted() -> bool:
                    return await sample(http, "tableforge_ws_connections") == 6

                # one scrape sums the sockets of both workers
                await eventually(both_workers_counted, 10, "6 sockets on /metrics", poll=0.2)
            client = redis.asyncio.Redis.from_url(redis_url)
            keys = [k async for k in client.scan_iter(match=f"tableforge:{cluster.namespace}:instance:*")]
            await client.aclose()
            ids = {k.decode().rsplit(":", 1)[1] for k in keys}
            assert len(ids) == 2 and all(i.startswith(cluster.instance_id(0) + "-") for i in ids), ids
            for s in socks:
                await s.close()
    finally:
        cluster.stop()

"""The rebalancing policy (TABLEFORGE_REBALANCE_INTERVAL_SECONDS > 0): with nobody asking, the instance
holding every socket after the other came back sheds its excess, and least-connections evens them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.balancing.conftest import make_tables
from tests.balancing.support import admin_stats, leastconn_backend, scrape, start_balancer
from tests.balancing.test_drain import Game
from tests.support.accounts import make_admin
from tests.support.client import Api
from tests.support.cluster import Cluster
from tests.support.haproxy import require_haproxy
from tests.support.waiting import eventually

POLICY = {"TABLEFORGE_REBALANCE_INTERVAL_SECONDS": "1", "TABLEFORGE_REBALANCE_TOLERANCE": "0.2",
          "TABLEFORGE_REBALANCE_MIN_SOCKETS": "3", "TABLEFORGE_REBALANCE_SECONDS": "1"}


@pytest.fixture(scope="module")
def pair(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_haproxy()
    cluster = Cluster(2, pg_url, redis_url, tmp_path_factory.mktemp("policy"), **POLICY).start()
    yield cluster
    cluster.stop()


async def test_the_policy_sheds_the_excess_by_itself(pair: Cluster, tmp_path: Path) -> None:
    base = pair.servers[0].base_url
    async with Api(base) as api:
        admin = await make_admin(api, pair.env)
    proxy, lb = start_balancer(pair, leastconn_backend(), tmp_path / "haproxy")
    other = pair.instance_id(1)
    game: Game | None = None
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(f"{base}/api/admin/instances/{other}/drain", headers=admin.headers,
                                json={"window_seconds": 0, "notice_seconds": 0})
            assert r.status_code == 202
            await asyncio.to_thread(proxy.wait_state, "tableforge", "tf2", "DOWN")
            game = Game(lb, await make_tables(base, rooms=2, players_per_room=3))
            await game.moved(2)
            assert {mp.servers[-1] for _, mp in game.players} == {"tf1"}  # 6 / 0
            r = await http.delete(f"{base}/api/admin/instances/{other}/drain", headers=admin.headers)
            assert r.status_code == 202
        await asyncio.to_thread(proxy.wait_state, "tableforge", "tf2", "UP")

        async def even() -> bool:
            counts = sorted(int(s["connections"]) for s in (await admin_stats(base, admin.token)).values())
            return counts == [3, 3]

        await eventually(even, 30, "the policy to even the sockets out (3 / 3)")
        await game.moved(2)
        await game.stop_and_check(base)
        assert sum(mp.reconnects for _, mp in game.players) == 3
        metrics = await scrape(base)
        assert 'tableforge_rebalance_sheds_total{origin="policy"} 1.0' in metrics
        assert 'tableforge_sockets_moved_total{why="rebalance"} 3.0' in metrics
    finally:
        if game is not None:
            await game.cancel()
        proxy.stop()

"""Three real scale-out instances (PostgreSQL + Redis) for the balancer tests, an administrator, and
tables of players set up directly on an instance (only the sockets go through the balancer)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.accounts import make_admin
from tests.support.client import Api, Player
from tests.support.cluster import Cluster
from tests.support.haproxy import require_haproxy

FAST_DRAIN = {"TABLEFORGE_DRAIN_NOTICE_SECONDS": "1", "TABLEFORGE_DRAIN_SECONDS": "2"}


@pytest.fixture(scope="package")  # one cluster for the package: each start costs ~10 s per instance
def trio(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_haproxy()
    cluster = Cluster(3, pg_url, redis_url, tmp_path_factory.mktemp("balanced"), **FAST_DRAIN).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="package")
async def admin(trio: Cluster) -> Player:
    async with Api(trio.servers[0].base_url) as api:
        return await make_admin(api, trio.env)


@dataclass
class Table:
    room_id: str
    players: list[Player]
    tokens: list[str]  # players[i] owns tokens[i]


async def make_tables(base_url: str, rooms: int, players_per_room: int) -> list[Table]:
    """Rooms with their players, and a token each, made over HTTP on one instance."""
    tables = []
    async with Api(base_url) as api:
        for _ in range(rooms):
            players = [await api.register("p") for _ in range(players_per_room)]
            room = await api.room(players[0], *players[1:])
            asset = await api.asset(players[0], room["id"])
            tokens = []
            for i, p in enumerate(players):
                r = await api.http.post(f"/api/rooms/{room['id']}/tokens", headers=p.headers,
                                        json={"asset_id": asset["id"], "x": 0, "y": i})
                assert r.status_code == 201, r.text
                tokens.append(r.json()["id"])
            tables.append(Table(room["id"], players, tokens))
    return tables


async def snapshot(base_url: str, who: Player, room_id: str) -> dict[str, Any]:
    async with Api(base_url) as api:
        return await api.snapshot(who, room_id)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "haproxy"

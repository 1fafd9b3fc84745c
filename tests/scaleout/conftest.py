"""Fixtures for the scale-out unit tests: brokers, registries and presences on the suite's one Redis
(`redis_url`), under the test's own prefix (`prefix`, tests/conftest.py), which their pub/sub
channels carry too. With CI=true a missing Redis fails; otherwise these skip."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from tableforge.realtime.redis_broker import BrokerOptions, RedisBroker
from tableforge.realtime.redis_presence import RedisPresence
from tableforge.realtime.registry import InstanceRegistry
from tests.support.cluster import Cluster
from tests.support.private_redis import PrivateRedis

from .support import Inbox

MakeBroker = Callable[..., Awaitable[tuple[RedisBroker, Inbox]]]
MakeRegistry = Callable[..., Awaitable[InstanceRegistry]]
MakePresence = Callable[..., RedisPresence]


@pytest.fixture
def instance_ids() -> Callable[[str], str]:
    suffix = uuid.uuid4().hex[:6]
    return lambda name: f"{name}-{suffix}"


@pytest.fixture
async def make_broker(redis_url: str, prefix: str) -> AsyncIterator[MakeBroker]:
    """Started brokers sharing this test's prefix, each with a recording inbox ("an instance")."""
    brokers: list[RedisBroker] = []

    async def make(instance_id: str, url: str | None = None, **options: Any) -> tuple[RedisBroker, Inbox]:
        options.setdefault("prefix", prefix)
        options.setdefault("probe_interval", 0.5)
        options.setdefault("probe_timeout", 1.0)
        options.setdefault("max_backoff", 0.5)
        broker = RedisBroker(url or redis_url, instance_id, BrokerOptions(**options))
        inbox = Inbox()
        inbox.attach(broker)
        brokers.append(broker)
        await broker.start()
        return broker, inbox

    yield make
    for broker in brokers:
        await broker.close()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """The client registries and presences use, as the app would create it."""
    value = redis.asyncio.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    yield value
    await value.aclose()


@pytest.fixture
async def make_registry(client: redis.asyncio.Redis, prefix: str) -> AsyncIterator[MakeRegistry]:
    registries: list[InstanceRegistry] = []

    async def make(instance_id: str, **options: Any) -> InstanceRegistry:
        options.setdefault("prefix", prefix)
        registry = InstanceRegistry(client, instance_id, **options)
        registries.append(registry)
        await registry.start()
        return registry

    yield make
    for registry in registries:
        await registry.close()


@pytest.fixture
def make_presence(client: redis.asyncio.Redis, prefix: str) -> MakePresence:
    def make(instance_id: str, **options: Any) -> RedisPresence:
        options.setdefault("prefix", prefix)
        options.setdefault("min_redis_uptime", 0.0)
        return RedisPresence(client, instance_id, **options)

    return make


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, to stop and start at will (never the shared one)."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pair(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two scale-out instances on the shared PostgreSQL and Redis, started once for every test that only
    needs two instances and makes its own users and rooms (a test that stops or reconfigures one starts
    its own cluster instead)."""
    cluster = Cluster(2, pg_url, redis_url, tmp_path_factory.mktemp("pair")).start()
    yield cluster
    cluster.stop()

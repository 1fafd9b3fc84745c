"""InstanceRegistry: heartbeats, listing without KEYS, expiry of a killed instance."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis.asyncio

from tableforge.realtime.registry import InstanceRegistry

from .conftest import MakeRegistry
from .support import eventually, wait_until


def _ids(instances: list[dict[str, object]]) -> list[object]:
    return [body["instance_id"] for body in instances]


async def test_live_instances_lists_every_beating_instance_with_its_stats(
    make_registry: MakeRegistry, instance_ids: Callable[[str], str]
) -> None:
    a = await make_registry(instance_ids("a"), stats=lambda: {"connections": 3, "rooms": 2})
    b = await make_registry(instance_ids("b"), stats=lambda: {"connections": 0, "rooms": 0})

    listed = await a.live_instances()
    assert _ids(listed) == sorted([a.instance_id, b.instance_id])
    mine = next(body for body in listed if body["instance_id"] == a.instance_id)
    assert mine["connections"] == 3 and mine["rooms"] == 2
    assert isinstance(mine["memory_rss"], int) and mine["memory_rss"] > 0
    assert mine["uptime"] >= 0
    assert str(mine["last_heartbeat"]).endswith("Z") and str(mine["started_at"]).endswith("Z")
    assert await b.is_alive(a.instance_id)


async def test_a_killed_instance_disappears_after_the_expiry(
    make_registry: MakeRegistry, instance_ids: Callable[[str], str], raw: redis.asyncio.Redis, prefix: str
) -> None:
    a = await make_registry(instance_ids("a"), interval=0.1, ttl=0.5)
    b = await make_registry(instance_ids("b"), interval=0.1, ttl=0.5)
    assert len(await a.live_instances()) == 2

    # kill -9: b's heartbeat stops, nothing is deleted.
    assert b._task is not None
    b._task.cancel()
    await asyncio.gather(b._task, return_exceptions=True)

    async def b_unlisted() -> bool:
        return _ids(await a.live_instances()) == [a.instance_id]

    await eventually(b_unlisted, within=5, what="b to drop out of the listing")
    assert not await a.is_alive(b.instance_id)

    # a's next beats trim b from the index as well: nothing grows with dead instances.
    async def b_unindexed() -> bool:
        return b.instance_id.encode() not in await raw.zrange(f"{prefix}instances", 0, -1)

    await eventually(b_unindexed, within=5, what="b to leave the index")


async def test_close_removes_the_instance_at_once(
    make_registry: MakeRegistry, instance_ids: Callable[[str], str]
) -> None:
    a = await make_registry(instance_ids("a"))
    b = await make_registry(instance_ids("b"))
    await b.close()
    assert _ids(await a.live_instances()) == [a.instance_id]


async def test_hooks_hear_whether_the_instance_key_had_vanished(
    make_registry: MakeRegistry, instance_ids: Callable[[str], str], raw: redis.asyncio.Redis
) -> None:
    seen: list[bool] = []

    async def hook(revived: bool) -> None:
        seen.append(revived)

    a = await make_registry(instance_ids("a"), interval=0.05, ttl=5.0)
    a.add_hook(hook)
    await wait_until(lambda: len(seen) >= 2, what="two heartbeats")
    assert not any(seen)  # continuously alive
    await raw.delete(a.key)  # as after a Redis restart
    await wait_until(lambda: any(seen), what="a heartbeat that notices")
    assert await a.heartbeat() is False


async def test_redis_down_is_reported_not_raised(instance_ids: Callable[[str], str]) -> None:
    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    registry = InstanceRegistry(client, instance_ids("a"), interval=0.1, ttl=0.5)
    await registry.start()
    assert not registry.healthy
    assert await registry.heartbeat() is None
    await registry.close()
    await client.aclose()


def test_the_expiry_must_outlast_the_interval(client: redis.asyncio.Redis) -> None:
    with pytest.raises(ValueError):
        InstanceRegistry(client, "x", interval=10, ttl=10)

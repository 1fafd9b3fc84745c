"""The Redis tier on its own: key layout, pipelined batches, leases, SCAN deletion."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from tableforge.cache.codec import Codec
from tableforge.cache.entry import Entry
from tableforge.cache.redis_tier import RedisTier, State, glob_escape


@pytest.fixture
async def tier(redis_url: str, prefix: str) -> AsyncIterator[RedisTier]:
    t = RedisTier(redis_url, codec=Codec(), prefix=prefix)
    assert await t.start()
    yield t
    await t.close()


def live(value: object) -> Entry:
    return Entry(value, time.time() + 60, 0.001)


async def test_set_get_mset_mget(tier: RedisTier, raw: redis.asyncio.Redis, prefix: str) -> None:
    assert await tier.set("a", live({"x": 1}), 60)
    got = await tier.get("a")
    assert got is not None and got.value == {"x": 1} and got.delta == 0.001
    assert await tier.mset([(f"m{i}", live(i), 60.0) for i in range(10)])
    found = await tier.mget(["a", "m3", "nope", "m9"])
    assert {k: e.value for k, e in found.items()} == {"a": {"x": 1}, "m3": 3, "m9": 9}
    assert 0 < await raw.pttl(prefix + "k:m3") <= 60_000


async def test_lease_is_lost_to_a_delete(tier: RedisTier) -> None:
    token = await tier.acquire_lock("k", 5)
    assert token is not None
    assert await tier.acquire_lock("k", 5) is None  # held
    assert await tier.delete(["k"], [])  # a write's invalidation removes the lease
    assert not await tier.set_if_locked("k", token, live("old"), 60)
    assert await tier.get("k") is None


async def test_lease_holder_stores_and_releases(tier: RedisTier, raw: redis.asyncio.Redis, prefix: str) -> None:
    token = await tier.acquire_lock("k", 5)
    assert token is not None
    assert await tier.set_if_locked("k", token, live("fresh"), 60)
    assert await raw.exists(prefix + "l:k") == 0
    entry = await tier.get("k")
    assert entry is not None and entry.value == "fresh"


async def test_scan_unlink_counts_values_not_leases(tier: RedisTier, raw: redis.asyncio.Redis, prefix: str) -> None:
    await tier.mset([(f"catalog:{i}", live(i), 60.0) for i in range(1200)] + [("room:1", live(1), 60.0)])
    await tier.acquire_lock("catalog:x", 5)
    assert await tier.scan_unlink("catalog:*") == 1200
    left = sorted([k async for k in raw.scan_iter(match=glob_escape(prefix) + "*", count=1000)])
    assert left == [(prefix + "k:room:1").encode()]


async def test_glob_escape() -> None:
    assert glob_escape("tableforge:cache:a*b?[c]\\") == "tableforge:cache:a\\*b\\?\\[c\\]\\\\"


async def test_unreachable_redis_is_down_and_calls_return_defaults() -> None:
    t = RedisTier("redis://127.0.0.1:1/0", codec=Codec())
    assert not await t.start()
    assert t.state is State.DOWN and not t.healthy
    assert await t.get("a") is None
    assert await t.mget(["a"]) == {}
    assert not await t.set("a", live(1), 1)
    assert await t.acquire_lock("a", 1) is None
    assert await t.scan_unlink("*") is None
    assert await t.generation("g", 1) is None
    assert t.stats()["skipped_while_down"] == 6
    await t.close()

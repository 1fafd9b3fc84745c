"""The Cache in memory-only mode (embedded deployments): the same API, everything local."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tableforge.cache import Cache, CacheSettings, build_cache
from tableforge.cache.shared import NoSharedTier
from tableforge.config import Settings

from .support import FakeClock, wait_until


class Loader:
    """A loader backed by a dict standing in for the database, counting its calls."""

    def __init__(self, data: dict[str, Any] | None = None, delay: float = 0.0) -> None:
        self.data = dict(data or {})
        self.delay = delay
        self.calls: list[Any] = []

    def one(self, key: str) -> Any:
        async def load() -> Any:
            self.calls.append(key)
            if self.delay:
                await asyncio.sleep(self.delay)  # the scenario: a slow database read, for callers to overlap
            return self.data.get(key)

        return load

    async def many(self, keys: list[str]) -> dict[str, Any]:
        self.calls.append(list(keys))
        return {k: self.data[k] for k in keys if k in self.data}


async def test_miss_then_hit() -> None:
    cache = Cache()
    db = Loader({"room:1": {"name": "Crypt"}})
    assert await cache.get_or_load("room:1", db.one("room:1"), kind="room") == {"name": "Crypt"}
    assert await cache.get_or_load("room:1", db.one("room:1"), kind="room") == {"name": "Crypt"}
    assert db.calls == ["room:1"]
    stats = cache.stats()
    assert stats["mode"] == "memory" and stats["healthy"] is True
    assert stats["kinds"]["room"]["memory_hits"] == 1 and stats["kinds"]["room"]["loads"] == 1
    assert stats["hit_rate"] == 0.5
    await cache.close()


@pytest.mark.parametrize("eviction", ["lru", "lfu", "ttl"])
async def test_expiry_reloads(eviction: str) -> None:
    clock = FakeClock()
    cache = Cache(CacheSettings(eviction=eviction), clock=clock)  # type: ignore[arg-type]
    db = Loader({"k": 1})
    await cache.get_or_load("k", db.one("k"), ttl=10)
    clock.advance(9)
    await cache.get_or_load("k", db.one("k"), ttl=10)
    assert len(db.calls) == 1
    db.data["k"] = 2
    clock.advance(2)
    assert await cache.get_or_load("k", db.one("k"), ttl=10) == 2
    assert len(db.calls) == 2


async def test_kind_ttls_apply_when_no_ttl_is_given() -> None:
    clock = FakeClock()
    cache = Cache(CacheSettings(default_ttl=300, kind_ttls={"query": 180}), clock=clock)
    db = Loader({"q": 1, "d": 2})
    await cache.get_or_load("q", db.one("q"), kind="query")
    await cache.get_or_load("d", db.one("d"))
    clock.advance(200)
    await cache.get_or_load("q", db.one("q"), kind="query")
    await cache.get_or_load("d", db.one("d"))
    assert db.calls == ["q", "d", "q"]


@pytest.mark.parametrize("eviction", ["lru", "lfu", "ttl"])
async def test_eviction_bounds_the_memory_tier(eviction: str) -> None:
    cache = Cache(CacheSettings(max_size=10, eviction=eviction))  # type: ignore[arg-type]
    db = Loader({f"k{i}": i for i in range(100)})
    for i in range(100):
        await cache.get_or_load(f"k{i}", db.one(f"k{i}"))
    stats = cache.stats()["memory"]
    assert stats["size"] == 10 and stats["evictions"] == 90


async def test_negative_results_are_cached_briefly() -> None:
    clock = FakeClock()
    cache = Cache(CacheSettings(negative_ttl=30), clock=clock)
    db = Loader()
    assert await cache.get_or_load("user:404", db.one("user:404"), ttl=600) is None
    assert await cache.get_or_load("user:404", db.one("user:404"), ttl=600) is None
    assert db.calls == ["user:404"]
    assert cache.stats()["negative_hits"] == 1
    db.data["user:404"] = {"name": "late"}
    clock.advance(31)
    assert await cache.get_or_load("user:404", db.one("user:404"), ttl=600) == {"name": "late"}


async def test_concurrent_callers_share_one_load() -> None:
    cache = Cache()
    db = Loader({"hot": "value"}, delay=0.02)
    results = await asyncio.gather(*(cache.get_or_load("hot", db.one("hot")) for _ in range(100)))
    assert results == ["value"] * 100
    assert db.calls == ["hot"]
    stats = cache.stats()
    assert stats["coalesced"] == 99 and stats["in_flight"] == 0


async def test_a_cancelled_caller_does_not_cancel_the_shared_load() -> None:
    cache = Cache()
    gate = asyncio.Event()
    calls: list[str] = []

    async def load() -> str:
        calls.append("k")
        await gate.wait()  # the database answers when the test says so
        return "v"

    first = asyncio.create_task(cache.get_or_load("k", load))
    await wait_until(lambda: calls == ["k"], what="the load in flight")
    second = asyncio.create_task(cache.get_or_load("k", load))
    await wait_until(lambda: cache.stats()["coalesced"] == 1, what="the second caller joining the load")
    first.cancel()
    await wait_until(first.done, what="the first caller gone")
    gate.set()
    assert await second == "v"
    assert calls == ["k"]


async def test_loader_errors_reach_every_waiter_and_are_not_cached() -> None:
    cache = Cache()
    gate = asyncio.Event()
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise RuntimeError("database is down")

    waiting = asyncio.gather(*(cache.get_or_load("k", failing) for _ in range(5)), return_exceptions=True)
    await wait_until(lambda: cache.stats()["coalesced"] == 4, what="four callers joining the one load")
    gate.set()
    results = await waiting
    assert all(isinstance(r, RuntimeError) for r in results)
    assert calls == 1
    assert await cache.get_or_load("k", Loader({"k": "ok"}).one("k")) == "ok"
    assert cache.stats()["kinds"]["default"]["load_errors"] == 1


async def test_delete_during_a_load_keeps_the_old_result_out_of_the_cache() -> None:
    cache = Cache()
    gate = asyncio.Event()

    async def old_read() -> str:
        await gate.wait()
        return "old"

    reader = asyncio.create_task(cache.get_or_load("k", old_read))
    await wait_until(lambda: cache.stats()["in_flight"] == 1, what="the read in flight")
    await cache.delete("k")  # the write commits while the read is in flight
    # A caller after the delete must not join the load that may have read the old row.
    after = asyncio.create_task(cache.get_or_load("k", Loader({"k": "new"}).one("k")))
    gate.set()
    assert await reader == "old"
    assert await after == "new"
    assert await cache.get_or_load("k", Loader({"k": "newer"}).one("k")) == "new"
    assert cache.stats()["stale_discards"] == 1


async def test_get_many_calls_the_loader_once_with_only_the_misses() -> None:
    cache = Cache()
    db = Loader({f"t{i}": {"id": i} for i in range(5)})
    await cache.get_or_load("t0", db.one("t0"))
    await cache.get_or_load("t1", db.one("t1"))
    db.calls.clear()
    got = await cache.get_many_or_load(["t0", "t1", "t2", "t3", "t4", "t9", "t2"], db.many)
    assert got == {f"t{i}": {"id": i} for i in range(5)}
    assert list(got) == ["t0", "t1", "t2", "t3", "t4"]
    assert db.calls == [["t2", "t3", "t4", "t9"]]
    # Everything, including the missing t9, is now cached.
    assert await cache.get_many_or_load(["t0", "t3", "t9"], db.many) == {"t0": {"id": 0}, "t3": {"id": 3}}
    assert len(db.calls) == 1


async def test_hot_keys_refresh_before_they_expire() -> None:
    clock = FakeClock()
    # Pin the XFetch draw: -ln(1 - 0.999) = 6.9, a 0.35 s window with the 0.05 s delta floor.
    cache = Cache(clock=clock, rand=lambda: 0.999)
    db = Loader({"hot": "v1"})
    await cache.get_or_load("hot", db.one("hot"), ttl=60)
    db.data["hot"] = "v2"
    clock.advance(59.99)
    assert await cache.get_or_load("hot", db.one("hot"), ttl=60) == "v1"  # served, refresh starts
    await wait_until(lambda: len(db.calls) == 2 and cache.stats()["refreshing"] == 0, what="refresh")
    clock.advance(0.02)  # past the original expiry
    assert await cache.get_or_load("hot", db.one("hot"), ttl=60) == "v2"
    assert len(db.calls) == 2
    assert cache.stats()["kinds"]["default"]["early_refreshes"] == 1


async def test_no_early_refresh_far_from_expiry() -> None:
    clock = FakeClock()
    cache = Cache(clock=clock)
    db = Loader({"k": 1})
    await cache.get_or_load("k", db.one("k"), ttl=60)
    clock.advance(30)
    for _ in range(1000):
        await cache.get_or_load("k", db.one("k"), ttl=60)
    assert len(db.calls) == 1


async def test_pattern_invalidation() -> None:
    cache = Cache()
    db = Loader({"catalog:1": 1, "catalog:2": 2, "room:1": 3})
    for key in db.data:
        await cache.get_or_load(key, db.one(key))
    assert await cache.invalidate_pattern("catalog:*") == 2
    db.calls.clear()
    for key in db.data:
        await cache.get_or_load(key, db.one(key))
    assert db.calls == ["catalog:1", "catalog:2"]


async def test_generations_are_local_and_monotonic() -> None:
    cache = Cache()
    first = await cache.generation("catalog")
    other = await cache.generation("systems")
    assert await cache.generation("catalog") == first
    await cache.bump_generation("catalog")
    assert await cache.generation("catalog") == first + 1
    assert await cache.generation("systems") == other


async def test_stats_kinds_are_bounded() -> None:
    cache = Cache()
    db = Loader({"k": 1})
    for i in range(100):
        await cache.get_or_load(f"k{i}", db.one("k"), kind=f"kind-{i}")
    assert len(cache.stats()["kinds"]) <= 33


async def test_a_new_cache_counts_its_own_kinds_after_others_filled_the_label_set() -> None:
    """The Prometheus label set is the process's; a cache's own counters are its own. A process
    that has seen many kinds (a test process, an embedding application) still reports this cache's
    loads under their kind, not under "other"."""
    crowded = Cache()
    for i in range(40):
        await crowded.get_or_load(f"k{i}", Loader({"k": 1}).one("k"), kind=f"crowd-{i}")
    cache = Cache()
    await cache.get_or_load("s1", Loader({"k": 1}).one("k"), kind="a-kind-never-seen")
    kinds = cache.stats()["kinds"]
    assert list(kinds) == ["a-kind-never-seen"] and kinds["a-kind-never-seen"]["loads"] == 1


async def test_build_cache_is_memory_only_without_redis_url() -> None:
    settings = Settings(redis_url=None, cache_max_size=123, cache_eviction="lfu", instance_id="solo")
    cache = build_cache(settings)
    await cache.start()
    assert isinstance(cache.shared, NoSharedTier) and cache.healthy
    assert cache.stats()["memory"]["max_size"] == 123
    assert cache.stats()["memory"]["policy"] == "lfu"
    assert await cache.redis_info() == {"enabled": False, "healthy": True}
    await cache.close()

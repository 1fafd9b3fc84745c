"""The Cache with Redis: two Cache objects on one Redis stand for two server instances.

Each has its own memory tier; they share tier 2 and the invalidation channel (under a prefix
unique to the test). Cross-instance delivery is awaited by polling the receiver's counters,
never by sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio

from tableforge.cache import Cache, CacheSettings
from tableforge.cache.codec import MSGPACK, ZSTD
from tableforge.cache.redis_shared import RedisShared

from .conftest import MakeCache
from .support import wait_until


class Db:
    """The database stand-in: a dict, and a count of reads per key."""

    def __init__(self, **rows: Any) -> None:
        self.rows = dict(rows)
        self.reads: list[Any] = []
        self.delay = 0.0

    def loader(self, key: str):  # type: ignore[no-untyped-def]
        async def load() -> Any:
            self.reads.append(key)
            if self.delay:
                await asyncio.sleep(self.delay)  # the scenario: a slow database read, for callers to overlap
            return self.rows.get(key)

        return load

    async def many(self, keys: list[str]) -> dict[str, Any]:
        self.reads.append(list(keys))
        return {k: self.rows[k] for k in keys if k in self.rows}


async def received(cache: Cache, at_least: int) -> None:
    await wait_until(lambda: cache.stats()["invalidations"]["received"] >= at_least, what="invalidation delivery")


async def test_second_instance_reads_tier_two(make_cache: MakeCache) -> None:
    a, b = await make_cache(), await make_cache()
    assert a.healthy and b.healthy
    db = Db(k={"hp": 12})
    assert await a.get_or_load("k", db.loader("k")) == {"hp": 12}
    assert await b.get_or_load("k", db.loader("k")) == {"hp": 12}
    assert db.reads == ["k"]
    assert b.stats()["redis_hits"] == 1


@pytest.mark.parametrize("serialization", ["json", "msgpack"])
async def test_large_values_round_trip_compressed(
    make_cache: MakeCache, raw: redis.asyncio.Redis, prefix: str, serialization: str
) -> None:
    a = await make_cache(serialization=serialization)
    b = await make_cache(serialization="msgpack" if serialization == "json" else "json")
    value = {"tokens": [{"id": i, "name": f"token {i}", "x": i, "y": -i} for i in range(300)]}
    db = Db(big=value)
    assert await a.get_or_load("big", db.loader("big")) == value
    stored = await raw.get(prefix + "k:big")
    assert stored is not None and stored[0] & ZSTD
    assert await b.get_or_load("big", db.loader("big")) == value  # b reads a's codec from the header
    assert db.reads == ["big"]


async def test_corrupt_tier_two_value_is_a_miss(make_cache: MakeCache, raw: redis.asyncio.Redis, prefix: str) -> None:
    cache = await make_cache()
    await raw.set(prefix + "k:room:1", b"\x7f\x00definitely not ours", px=60_000)
    await raw.set(prefix + "k:room:2", bytes((MSGPACK | ZSTD,)) + b"not zstd", px=60_000)
    db = Db(**{"room:1": "fresh 1", "room:2": "fresh 2"})
    assert await cache.get_or_load("room:1", db.loader("room:1")) == "fresh 1"
    assert await cache.get_many_or_load(["room:2"], db.many) == {"room:2": "fresh 2"}
    assert cache.stats()["redis"]["decode_errors"] == 2
    assert cache.healthy
    # The reload replaced the corrupt value.
    other = await make_cache()
    assert await other.get_or_load("room:1", db.loader("room:1")) == "fresh 1"
    assert len(db.reads) == 2


async def test_one_load_for_100_concurrent_callers(make_cache: MakeCache) -> None:
    cache = await make_cache()
    db = Db(hot="v")
    db.delay = 0.05
    results = await asyncio.gather(*(cache.get_or_load("hot", db.loader("hot")) for _ in range(100)))
    assert results == ["v"] * 100
    assert db.reads == ["hot"]


async def test_one_load_across_instances(make_cache: MakeCache) -> None:
    instances = [await make_cache() for _ in range(3)]
    db = Db(hot="v")
    db.delay = 0.1
    calls = [c.get_or_load("hot", db.loader("hot")) for c in instances for _ in range(30)]
    assert await asyncio.gather(*calls) == ["v"] * 90
    assert db.reads == ["hot"]
    assert sum(c.stats()["lock_waits"]["filled"] for c in instances) == 2


async def test_delete_on_one_instance_is_seen_by_the_other(make_cache: MakeCache) -> None:
    a, b = await make_cache(), await make_cache()
    db = Db(k="old")
    assert await a.get_or_load("k", db.loader("k")) == "old"
    assert await b.get_or_load("k", db.loader("k")) == "old"  # now in b's tier 1
    db.rows["k"] = "new"
    await a.delete("k")
    await received(b, 1)
    assert await b.get_or_load("k", db.loader("k")) == "new"
    assert await a.get_or_load("k", db.loader("k")) == "new"


async def test_a_load_overlapping_a_delete_does_not_reach_redis(
    make_cache: MakeCache, raw: redis.asyncio.Redis, prefix: str
) -> None:
    a, b = await make_cache(), await make_cache()
    started, gate = asyncio.Event(), asyncio.Event()

    async def old_read() -> str:
        started.set()
        await gate.wait()
        return "old"

    reader = asyncio.create_task(a.get_or_load("k", old_read))
    await started.wait()
    await b.delete("k")  # the write commits on b while a's read is in flight
    gate.set()
    assert await reader == "old"  # the read overlapped the write
    assert await raw.get(prefix + "k:k") is None  # but its value was not stored
    await received(a, 1)
    assert await a.get_or_load("k", Db(k="new").loader("k")) == "new"


async def test_get_many_loads_only_what_no_tier_has(make_cache: MakeCache) -> None:
    a, b = await make_cache(), await make_cache()
    db = Db(**{f"t{i}": {"id": i} for i in range(6)})
    await a.get_or_load("t0", db.loader("t0"))  # t0 in a's tier 1 and in Redis
    await b.get_or_load("t1", db.loader("t1"))  # t1 only in Redis (as far as a knows)
    db.reads.clear()
    got = await a.get_many_or_load(["t0", "t1", "t2", "t3", "missing"], db.many)
    assert got == {"t0": {"id": 0}, "t1": {"id": 1}, "t2": {"id": 2}, "t3": {"id": 3}}
    assert db.reads == [["t2", "t3", "missing"]]
    # b now finds everything (including the negative entry) in Redis.
    assert await b.get_many_or_load(["t2", "t3", "missing"], db.many) == {"t2": {"id": 2}, "t3": {"id": 3}}
    assert len(db.reads) == 1


async def test_negative_entries_are_shared(make_cache: MakeCache) -> None:
    a, b = await make_cache(), await make_cache()
    db = Db()
    assert await a.get_or_load("user:9", db.loader("user:9")) is None
    assert await b.get_or_load("user:9", db.loader("user:9")) is None
    assert db.reads == ["user:9"]


async def test_generation_bump_reaches_the_other_instance(make_cache: MakeCache) -> None:
    a, b = await make_cache(), await make_cache()
    first = await a.generation("catalog")
    assert await b.generation("catalog") == first  # b caches it
    await a.bump_generation("catalog")
    await received(b, 1)
    assert await b.generation("catalog") == first + 1
    assert await a.generation("catalog") == first + 1


async def test_generation_keys_orphan_a_family(make_cache: MakeCache) -> None:
    a, b = await make_cache(), await make_cache()
    db = Db(page="v1")

    async def page(cache: Cache) -> Any:
        gen = await cache.generation("catalog")
        return await cache.get_or_load(f"catalog:g{gen}:page:1", db.loader("page"))

    assert await page(a) == "v1" and await page(b) == "v1"
    db.rows["page"] = "v2"
    await a.bump_generation("catalog")
    await received(b, 1)
    assert await page(b) == "v2" and await page(a) == "v2"


async def test_pattern_invalidation_uses_scan_not_keys(
    make_cache: MakeCache, raw: redis.asyncio.Redis, prefix: str
) -> None:
    a, b = await make_cache(), await make_cache()
    db = Db(**{f"catalog:{i}": i for i in range(5)}, **{"room:1": "r"})
    for key in db.rows:
        await a.get_or_load(key, db.loader(key))
        await b.get_or_load(key, db.loader(key))
    before = await raw.info("commandstats")
    assert await a.invalidate_pattern("catalog:*") == 5
    after = await raw.info("commandstats")
    assert after.get("cmdstat_keys", {}).get("calls", 0) == before.get("cmdstat_keys", {}).get("calls", 0)
    assert after["cmdstat_scan"]["calls"] > before.get("cmdstat_scan", {}).get("calls", 0)
    assert [k async for k in raw.scan_iter(match=prefix + "k:*")] == [(prefix + "k:room:1").encode()]
    await received(b, 1)
    db.reads.clear()
    for key in db.rows:
        await b.get_or_load(key, db.loader(key))
    assert sorted(db.reads) == [f"catalog:{i}" for i in range(5)]


async def test_every_key_lives_under_the_prefix(make_cache: MakeCache, raw: redis.asyncio.Redis, prefix: str) -> None:
    cache = await make_cache()
    await cache.get_or_load("a", Db(a=1).loader("a"))
    await cache.generation("g")
    info = await cache.redis_info()
    assert info["enabled"] and info["healthy"] and info["keys"] == 2
    assert isinstance(info["used_memory"], int)
    names = sorted([k.decode() async for k in raw.scan_iter(match=prefix + "*")])
    assert names == [prefix + "g:g", prefix + "k:a"]
    assert prefix.startswith("tableforge:")  # every key of the deployment under the house prefix


async def test_unreachable_redis_degrades_to_the_loader() -> None:
    cache = Cache(CacheSettings(redis_url="redis://127.0.0.1:1/9", instance_id="lonely"))
    await cache.start()
    try:
        assert cache.healthy is False
        db = Db(k="v", m="w")
        assert await cache.get_or_load("k", db.loader("k")) == "v"
        assert await cache.get_many_or_load(["k", "m"], db.many) == {"k": "v", "m": "w"}
        await cache.delete("k")
        assert await cache.invalidate_pattern("*") >= 0
        gen = await cache.generation("catalog")
        await cache.bump_generation("catalog")
        assert await cache.generation("catalog") == gen + 1
        assert (await cache.redis_info())["healthy"] is False
        stats = cache.stats()
        assert stats["healthy"] is False and stats["redis"]["errors"] >= 1
        assert stats["redis"]["pending_invalidations"] >= 2
    finally:
        await cache.close()


async def test_tier_one_is_short_lived_while_deaf() -> None:
    from .support import FakeClock

    clock = FakeClock()
    cache = Cache(CacheSettings(redis_url="redis://127.0.0.1:1/9", degraded_local_ttl=5), clock=clock)
    await cache.start()
    try:
        db = Db(k="v")
        await cache.get_or_load("k", db.loader("k"), ttl=300)
        clock.advance(4)
        await cache.get_or_load("k", db.loader("k"), ttl=300)
        clock.advance(2)
        await cache.get_or_load("k", db.loader("k"), ttl=300)
        assert db.reads == ["k", "k"]
    finally:
        await cache.close()


async def test_pending_invalidations_are_bounded() -> None:
    cache = Cache(CacheSettings(redis_url="redis://127.0.0.1:1/9", max_pending_invalidations=3))
    await cache.start()
    try:
        await cache.delete("a", "b", "c", "d", "e")
        assert cache.stats()["redis"]["pending_overflow"] is True
    finally:
        await cache.close()


async def test_early_refresh_reloads_once_across_instances(make_cache: MakeCache) -> None:
    from .support import FakeClock

    clock = FakeClock()
    # Pinned XFetch draw: a refresh is certain within ~0.35 s of expiry, impossible before.
    a = await make_cache(clock=clock, rand=lambda: 0.999)
    b = await make_cache(clock=clock, rand=lambda: 0.999)
    db = Db(hot="v1")
    assert await a.get_or_load("hot", db.loader("hot"), ttl=60) == "v1"
    assert await b.get_or_load("hot", db.loader("hot"), ttl=60) == "v1"  # tier 2 → b's tier 1
    db.rows["hot"] = "v2"
    clock.advance(59.9)
    assert await a.get_or_load("hot", db.loader("hot"), ttl=60) == "v1"  # a refreshes
    await wait_until(lambda: a.stats()["refreshing"] == 0, what="a's refresh")
    assert await b.get_or_load("hot", db.loader("hot"), ttl=60) == "v1"  # b adopts a's result
    await wait_until(lambda: b.stats()["refreshing"] == 0, what="b's refresh")
    assert db.reads == ["hot", "hot"]
    clock.advance(0.2)  # past the first expiry
    assert await a.get_or_load("hot", db.loader("hot"), ttl=60) == "v2"
    assert await b.get_or_load("hot", db.loader("hot"), ttl=60) == "v2"
    assert db.reads == ["hot", "hot"]
    assert a.stats()["kinds"]["default"]["refresh_loads"] == 1


async def test_build_cache_uses_redis_when_configured(redis_url: str, prefix: str) -> None:
    from tableforge.cache import build_cache
    from tableforge.config import Settings

    settings = Settings(redis_url=redis_url, instance_id="built", cache_serialization="json")
    cache = build_cache(settings, prefix=prefix)
    await cache.start()
    try:
        assert isinstance(cache.shared, RedisShared) and cache.healthy
        assert cache.shared.tier.codec.serialization == "json"
        assert await cache.get_or_load("k", Db(k=1).loader("k"), kind="query") == 1
        assert cache.stats()["mode"] == "redis" and cache.stats()["instance_id"] == "built"
    finally:
        await cache.close()


async def test_garbage_on_the_channel_is_ignored(make_cache: MakeCache, raw: redis.asyncio.Redis, prefix: str) -> None:
    a, b = await make_cache(), await make_cache()
    db = Db(k="old")
    await b.get_or_load("k", db.loader("k"))
    await raw.publish(prefix + "invalidate", b"\x00 not a message")
    db.rows["k"] = "new"
    await a.delete("k")
    await received(b, 1)
    assert await b.get_or_load("k", db.loader("k")) == "new"
    assert b.healthy


def _lookups(result: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("tableforge_cache_lookup_seconds_count", {"result": result}) or 0.0


async def test_lookup_latency_histogram_counts_each_tier(make_cache: MakeCache) -> None:
    """An operator's view: every lookup lands in tableforge_cache_lookup_seconds under the tier that
    answered it (or miss), single and batched lookups alike."""
    a, b = await make_cache(), await make_cache()
    db = Db(k={"hp": 1}, m={"hp": 2})
    before = {r: _lookups(r) for r in ("memory", "redis", "miss")}
    await a.get_or_load("k", db.loader("k"))  # miss everywhere, loaded
    await a.get_or_load("k", db.loader("k"))  # memory
    await b.get_or_load("k", db.loader("k"))  # redis
    await b.get_many_or_load(["k", "m"], db.many)  # one batched lookup: m is loaded, so a miss
    await b.get_many_or_load(["k", "m"], db.many)  # both in b's memory now
    delta = {r: _lookups(r) - before[r] for r in before}
    assert delta == {"memory": 2, "redis": 1, "miss": 2}

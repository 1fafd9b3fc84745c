"""The seam between the tiered cache and its shared tier (`SharedTier`), without Redis.

Embedded mode has no shared tier (`NoSharedTier`): invalidation must still drop tier-1 copies
and in-flight loads, and nothing may be counted as sent or remembered for a replay. A second,
in-process `SharedTier` shows the cache needs nothing beyond the protocol: values found in tier
2 are not loaded again, and invalidations reach the other instance's tier 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

from prometheus_client import REGISTRY

from tableforge.cache import Cache, CacheSettings
from tableforge.cache.entry import Entry
from tableforge.cache.invalidation import Invalidation
from tableforge.cache.shared import NoSharedTier, SharedTier, TierOne
from tableforge.cache.tiered import build_shared_tier

from .support import FakeClock


def _sent(kind: str) -> float:
    return REGISTRY.get_sample_value("tableforge_cache_invalidations_sent_total", {"type": kind}) or 0.0


class Db:
    def __init__(self, **rows: Any) -> None:
        self.rows = dict(rows)
        self.reads: list[str] = []

    def loader(self, key: str):  # type: ignore[no-untyped-def]
        async def load() -> Any:
            self.reads.append(key)
            return self.rows.get(key)

        return load


def test_embedded_settings_build_no_shared_tier() -> None:
    shared = build_shared_tier(CacheSettings(), instance_id="solo", clock=FakeClock())
    assert isinstance(shared, NoSharedTier)
    assert shared.healthy and not shared.readable and not shared.deaf


async def test_embedded_invalidation_drops_tier_one_and_sends_nothing() -> None:
    cache = Cache(CacheSettings(instance_id="solo"))
    await cache.start()
    db = Db(**{"room:1": "r1", "catalog:1": "c1", "catalog:2": "c2"})
    before = {kind: _sent(kind) for kind in ("keys", "pattern", "generation")}
    for key in db.rows:
        await cache.get_or_load(key, db.loader(key))
    db.rows.update({"room:1": "r1 new", "catalog:1": "c1 new", "catalog:2": "c2 new"})

    await cache.delete("room:1")
    assert await cache.invalidate_pattern("catalog:*") == 2  # tier-1 entries removed
    tag = await cache.generation("catalog")
    await cache.bump_generation("catalog")
    assert await cache.generation("catalog") == tag + 1

    db.reads.clear()
    for key in db.rows:
        assert await cache.get_or_load(key, db.loader(key)) == db.rows[key]
    assert db.reads == ["room:1", "catalog:1", "catalog:2"]
    stats = cache.stats()
    assert stats["mode"] == "memory" and stats["redis"] is None and stats["healthy"] is True
    assert stats["invalidations"] == {"sent": 0, "received": 0, "local_flushes": 0}
    assert {kind: _sent(kind) for kind in before} == before
    await cache.close()


class InProcessShared(NoSharedTier):
    """A shared tier held in a dict, whose invalidations reach every attached cache: just
    enough of `SharedTier` to check that the cache uses nothing else."""

    mode = "in-process"
    readable = True

    def __init__(self, sender: str, bus: InProcessBus) -> None:
        self.sender = sender
        self.bus = bus

    async def start(self, local: TierOne) -> None:
        self.bus.members[self.sender] = local

    async def get(self, key: str) -> Entry | None:
        return self.bus.values.get(key)

    async def mget(self, keys: Sequence[str]) -> dict[str, Entry]:
        return {k: self.bus.values[k] for k in keys if k in self.bus.values}

    async def set(self, key: str, entry: Entry, ttl: float) -> bool:
        self.bus.values[key] = entry
        return True

    async def mset(self, items: Sequence[tuple[str, Entry, float]]) -> bool:
        for key, entry, _ in items:
            self.bus.values[key] = entry
        return True

    async def invalidate_keys(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.bus.values.pop(key, None)
        self.bus.publish(Invalidation(self.sender, keys=tuple(keys)))

    async def invalidate_pattern(self, pattern: str) -> int | None:
        doomed = [k for k in self.bus.values if fnmatchcase(k, pattern)]
        for key in doomed:
            del self.bus.values[key]
        self.bus.publish(Invalidation(self.sender, patterns=(pattern,)))
        return len(doomed)

    async def generation(self, tag: str, baseline: int) -> int | None:
        return self.bus.generations.setdefault(tag, baseline)

    async def bump_generation(self, tag: str, baseline: int) -> int | None:
        self.bus.generations[tag] = self.bus.generations.setdefault(tag, baseline) + 1
        self.bus.publish(Invalidation(self.sender, tags=(tag,)))
        return self.bus.generations[tag]


class InProcessBus:
    def __init__(self) -> None:
        self.values: dict[str, Entry] = {}
        self.generations: dict[str, int] = {}
        self.members: dict[str, TierOne] = {}

    def publish(self, message: Invalidation) -> None:
        for sender, local in self.members.items():
            if sender != message.sender:
                local.apply(message)


async def test_the_cache_needs_only_the_protocol() -> None:
    bus = InProcessBus()
    shared_a: SharedTier = InProcessShared("a", bus)
    a = Cache(CacheSettings(instance_id="a"), shared=shared_a)
    b = Cache(CacheSettings(instance_id="b"), shared=InProcessShared("b", bus))
    await a.start()
    await b.start()
    db = Db(**{"k": "v1", "catalog:1": "c1"})
    for key in db.rows:
        await a.get_or_load(key, db.loader(key))
        await b.get_or_load(key, db.loader(key))  # from tier 2, not the loader
    assert db.reads == ["k", "catalog:1"]
    assert b.stats()["mode"] == "in-process" and b.stats()["redis_hits"] == 2

    db.rows.update(k="v2", **{"catalog:1": "c2"})
    await a.delete("k")
    assert await a.invalidate_pattern("catalog:*") == 1
    assert await b.get_or_load("k", db.loader("k")) == "v2"
    assert await b.get_or_load("catalog:1", db.loader("catalog:1")) == "c2"

    first = await b.generation("catalog")
    await a.bump_generation("catalog")
    assert await b.generation("catalog") == first + 1  # b forgot its cached value
    await a.close()
    await b.close()

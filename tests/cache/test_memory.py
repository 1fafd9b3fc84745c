"""Memory tier: hit, miss, per-item expiry and eviction for each policy (a fake clock, no sleeps)."""

from __future__ import annotations

import pytest

from tableforge.cache.entry import Entry
from tableforge.cache.memory import Eviction, MemoryTier

from .support import FakeClock

POLICIES: list[Eviction] = ["lru", "lfu", "ttl"]


def entry(value: object, clock: FakeClock, ttl: float = 60.0) -> Entry:
    return Entry(value, clock.now + ttl)


@pytest.mark.parametrize("policy", POLICIES)
def test_hit_and_miss(policy: Eviction) -> None:
    clock = FakeClock()
    tier = MemoryTier(10, eviction=policy, clock=clock)
    assert tier.get("a") is None
    tier.set("a", entry({"v": 1}, clock))
    got = tier.get("a")
    assert got is not None and got.value == {"v": 1}
    assert tier.stats()["hits"] == 1 and tier.stats()["misses"] == 1


@pytest.mark.parametrize("policy", POLICIES)
def test_per_item_expiry(policy: Eviction) -> None:
    clock = FakeClock()
    tier = MemoryTier(10, eviction=policy, ttl_cap=300, clock=clock)
    tier.set("short", entry("s", clock, ttl=5))
    tier.set("long", entry("l", clock, ttl=50))
    clock.advance(4.9)
    assert tier.get("short") is not None
    clock.advance(0.2)
    assert tier.get("short") is None
    assert tier.get("long") is not None
    clock.advance(50)
    assert tier.get("long") is None
    assert tier.stats()["expirations"] >= 2
    assert len(tier) == 0


@pytest.mark.parametrize("policy", POLICIES)
def test_already_expired_entries_are_not_stored(policy: Eviction) -> None:
    clock = FakeClock()
    tier = MemoryTier(10, eviction=policy, clock=clock)
    tier.set("a", Entry("x", clock.now - 1))
    assert "a" not in tier


def test_lru_evicts_least_recently_used() -> None:
    clock = FakeClock()
    tier = MemoryTier(2, eviction="lru", clock=clock)
    tier.set("a", entry(1, clock))
    tier.set("b", entry(2, clock))
    tier.get("a")
    tier.set("c", entry(3, clock))
    assert tier.keys() and "b" not in tier and "a" in tier and "c" in tier
    assert tier.stats()["evictions"] == 1


def test_lfu_evicts_least_frequently_used() -> None:
    clock = FakeClock()
    tier = MemoryTier(2, eviction="lfu", clock=clock)
    tier.set("a", entry(1, clock))
    tier.set("b", entry(2, clock))
    for _ in range(3):
        tier.get("b")
    tier.get("a")
    tier.set("c", entry(3, clock))  # a: 1 use, b: 3 uses
    assert "a" not in tier and "b" in tier and "c" in tier
    assert tier.stats()["evictions"] == 1


def test_ttl_policy_drops_expired_before_evicting_live_entries() -> None:
    clock = FakeClock()
    tier = MemoryTier(2, eviction="ttl", ttl_cap=10, clock=clock)
    tier.set("old", entry(1, clock, ttl=100))
    clock.advance(5)
    tier.set("young", entry(2, clock, ttl=100))
    tier.get("old")  # most recently used, but it is the one past the cap
    clock.advance(6)
    tier.set("new", entry(3, clock, ttl=100))
    assert "old" not in tier and "young" in tier and "new" in tier
    assert tier.stats()["evictions"] == 0 and tier.stats()["expirations"] == 1


def test_ttl_policy_evicts_lru_when_all_are_live() -> None:
    clock = FakeClock()
    tier = MemoryTier(2, eviction="ttl", ttl_cap=100, clock=clock)
    tier.set("a", entry(1, clock))
    tier.set("b", entry(2, clock))
    tier.get("a")
    tier.set("c", entry(3, clock))
    assert "b" not in tier and "a" in tier and "c" in tier
    assert tier.stats()["evictions"] == 1


@pytest.mark.parametrize("policy", POLICIES)
def test_size_is_bounded_and_reported(policy: Eviction) -> None:
    clock = FakeClock()
    tier = MemoryTier(50, eviction=policy, clock=clock)
    for i in range(500):
        tier.set(f"k{i}", entry(i, clock))
    stats = tier.stats()
    assert stats["size"] == 50 == len(tier)
    assert stats["evictions"] == 450


@pytest.mark.parametrize("policy", POLICIES)
def test_delete_matching_and_clear(policy: Eviction) -> None:
    clock = FakeClock()
    tier = MemoryTier(100, eviction=policy, clock=clock)
    for key in ("catalog:1", "catalog:2", "room:1"):
        tier.set(key, entry(key, clock))
    assert tier.delete_matching("catalog:*") == 2
    assert tier.keys() == ["room:1"]
    assert tier.delete(["room:1", "nope"]) == 1
    tier.set("x", entry(1, clock))
    assert tier.clear() == 1 and len(tier) == 0


def test_unknown_policy_is_rejected() -> None:
    with pytest.raises(ValueError):
        MemoryTier(10, eviction="fifo")  # type: ignore[arg-type]

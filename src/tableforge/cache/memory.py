"""Tier 1: entries held in this process, bounded by count, on cachetools.

Objects are stored as they are (no encoding), so a hit costs a dict lookup; callers must
treat returned values as immutable, since every caller gets the same object.

Expiry is per item: each Entry carries its own `expires_at`, checked on read. For the
`ttl` policy cachetools' TTLCache additionally drops entries after a cache-wide `ttl_cap`
and, when full, evicts expired entries before live ones; that cap is an upper bound on how
long tier 1 holds anything, never a lower one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from typing import Any, Literal

from cachetools import Cache as _CacheBase
from cachetools import LFUCache, LRUCache, TTLCache

from . import metrics
from .entry import Entry

Eviction = Literal["lru", "lfu", "ttl"]
Clock = Callable[[], float]


class _LRU(LRUCache[str, Entry]):
    def __init__(self, maxsize: int, on_evict: Callable[[int], None]) -> None:
        super().__init__(maxsize)
        self._on_evict = on_evict

    def popitem(self) -> tuple[str, Entry]:
        item = super().popitem()
        self._on_evict(1)
        return item


class _LFU(LFUCache[str, Entry]):
    def __init__(self, maxsize: int, on_evict: Callable[[int], None]) -> None:
        super().__init__(maxsize)
        self._on_evict = on_evict

    def popitem(self) -> tuple[str, Entry]:
        item = super().popitem()
        self._on_evict(1)
        return item


class _TTL(TTLCache[str, Entry]):
    def __init__(
        self,
        maxsize: int,
        ttl: float,
        timer: Clock,
        on_evict: Callable[[int], None],
        on_expire: Callable[[int], None],
    ) -> None:
        self._on_evict = on_evict
        self._on_expire = on_expire
        super().__init__(maxsize, ttl, timer=timer)

    def expire(self, time: float | None = None) -> list[tuple[str, Entry]]:
        expired = list(super().expire(time))
        if expired:
            self._on_expire(len(expired))
        return expired

    def popitem(self) -> tuple[str, Entry]:
        item = super().popitem()
        self._on_evict(1)
        return item


class MemoryTier:
    """A bounded map of key → Entry with hit/miss/eviction counts."""

    def __init__(
        self,
        max_size: int,
        *,
        eviction: Eviction = "lru",
        ttl_cap: float = 300.0,
        clock: Clock = time.time,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.eviction = eviction
        self.max_size = max_size
        self._clock = clock
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.expirations = 0
        self._reported_size = 0
        self._size_gauge = metrics.ENTRIES.labels(tier="memory")
        self._evicted_metric = metrics.EVICTIONS.labels(tier="memory", reason="size")
        self._expired_metric = metrics.EVICTIONS.labels(tier="memory", reason="expired")
        self._data: _CacheBase[str, Entry]
        if eviction == "lru":
            self._data = _LRU(max_size, self._count_eviction)
        elif eviction == "lfu":
            self._data = _LFU(max_size, self._count_eviction)
        elif eviction == "ttl":
            self._data = _TTL(max_size, ttl_cap, clock, self._count_eviction, self._count_expiry)
        else:
            raise ValueError(f"unknown eviction policy {eviction!r}")

    def _count_eviction(self, n: int) -> None:
        self.evictions += n
        self._evicted_metric.inc(n)

    def _count_expiry(self, n: int) -> None:
        self.expirations += n
        self._expired_metric.inc(n)

    def _report_size(self) -> None:
        size = len(self._data)
        if size != self._reported_size:
            self._size_gauge.inc(size - self._reported_size)
            self._reported_size = size

    def get(self, key: str, now: float | None = None) -> Entry | None:
        """The live entry for `key`, or None; an expired entry is dropped and counted as a miss."""
        entry = self._data.get(key)
        if entry is not None:
            if entry.expires_at > (self._clock() if now is None else now):
                self.hits += 1
                return entry
            self._data.pop(key, None)
            self._count_expiry(1)
            self._report_size()
        self.misses += 1
        return None

    def set(self, key: str, entry: Entry, now: float | None = None) -> None:
        if entry.expires_at <= (self._clock() if now is None else now):
            self._data.pop(key, None)
        else:
            self._data[key] = entry
        self._report_size()

    def set_many(self, items: Iterable[tuple[str, Entry]], now: float | None = None) -> None:
        now = self._clock() if now is None else now
        for key, entry in items:
            if entry.expires_at <= now:
                self._data.pop(key, None)
            else:
                self._data[key] = entry
        self._report_size()

    def delete(self, keys: Iterable[str]) -> int:
        removed = 0
        for key in keys:
            if self._data.pop(key, None) is not None:
                removed += 1
        if removed:
            self._report_size()
        return removed

    def delete_matching(self, pattern: str) -> int:
        """Drop keys matching a glob (fnmatch syntax, case-sensitive). O(size): not for hot paths."""
        return self.delete([key for key in list(self._data) if fnmatchcase(key, pattern)])

    def clear(self) -> int:
        size = len(self._data)
        self._data.clear()
        self._report_size()
        return size

    def keys(self) -> list[str]:
        return list(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def close(self) -> None:
        """Withdraw this tier's entries from the process-wide size gauge."""
        self._data.clear()
        self._report_size()

    def stats(self) -> dict[str, Any]:
        lookups = self.hits + self.misses
        return {
            "policy": self.eviction,
            "size": len(self._data),
            "max_size": self.max_size,
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hits / lookups if lookups else 0.0,
            "evictions": self.evictions,
            "expirations": self.expirations,
        }

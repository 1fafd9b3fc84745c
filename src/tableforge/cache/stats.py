"""Per-kind counters for `Cache.stats()`, mirrored to the Prometheus metrics.

Plain ints are what `stats()` reports for this cache; Prometheus gets the same events for
the fleet. Both are bounded, each on its own: this cache keeps at most MAX_KINDS kinds, and the
process's label set (shared by every cache in it) at most MAX_KINDS labels, so neither can grow
with ids, and one cache's kinds are never renamed "other" by kinds another cache has seen.
"""

from __future__ import annotations

from typing import Any

from . import metrics


class KindStats:
    """What happened to lookups of one kind of value. Each lookup ends in exactly one of
    memory hit, redis hit, coalesced (shared another caller's load) or load."""

    __slots__ = (
        "_coalesced",
        "_early",
        "_load_errors",
        "_load_seconds",
        "_memory_hit",
        "_memory_miss",
        "_redis_hit",
        "_redis_miss",
        "coalesced",
        "early_refreshes",
        "load_errors",
        "load_seconds",
        "loads",
        "memory_hits",
        "negative_hits",
        "redis_hits",
        "refresh_loads",
    )

    def __init__(self, label: str) -> None:
        self.memory_hits = 0
        self.redis_hits = 0
        self.negative_hits = 0
        self.coalesced = 0
        self.loads = 0
        self.load_errors = 0
        self.load_seconds = 0.0
        self.early_refreshes = 0
        self.refresh_loads = 0
        self._memory_hit = metrics.HITS.labels(tier="memory", kind=label)
        self._memory_miss = metrics.MISSES.labels(tier="memory", kind=label)
        self._redis_hit = metrics.HITS.labels(tier="redis", kind=label)
        self._redis_miss = metrics.MISSES.labels(tier="redis", kind=label)
        self._coalesced = metrics.COALESCED.labels(kind=label)
        self._load_seconds = metrics.LOAD_SECONDS.labels(kind=label)
        self._load_errors = metrics.LOAD_ERRORS.labels(kind=label)
        self._early = metrics.EARLY_REFRESHES.labels(kind=label)

    def memory_hit(self, negative: bool) -> None:
        self.memory_hits += 1
        self.negative_hits += negative
        self._memory_hit.inc()

    def memory_hits_many(self, n: int, negatives: int) -> None:
        if n:
            self.memory_hits += n
            self.negative_hits += negatives
            self._memory_hit.inc(n)

    def memory_miss(self, n: int = 1) -> None:
        if n:
            self._memory_miss.inc(n)

    def redis_hit(self, negative: bool) -> None:
        self.redis_hits += 1
        self.negative_hits += negative
        self._redis_hit.inc()

    def redis_hits_many(self, n: int, negatives: int) -> None:
        if n:
            self.redis_hits += n
            self.negative_hits += negatives
            self._redis_hit.inc(n)

    def redis_miss(self, n: int = 1) -> None:
        if n:
            self._redis_miss.inc(n)

    def coalesce(self) -> None:
        self.coalesced += 1
        self._coalesced.inc()

    def loaded(self, seconds: float, keys: int = 1, *, background: bool = False) -> None:
        """A finished load; background (early refresh) loads answer no request of their own."""
        if background:
            self.refresh_loads += keys
        else:
            self.loads += keys
        self.load_seconds += seconds
        self._load_seconds.observe(seconds)

    def load_failed(self, keys: int = 1) -> None:
        self.loads += keys
        self.load_errors += 1
        self._load_errors.inc()

    def early_refresh(self) -> None:
        self.early_refreshes += 1
        self._early.inc()

    @property
    def requests(self) -> int:
        return self.memory_hits + self.redis_hits + self.coalesced + self.loads

    def as_dict(self) -> dict[str, Any]:
        requests = self.requests
        return {
            "requests": requests,
            "memory_hits": self.memory_hits,
            "redis_hits": self.redis_hits,
            "negative_hits": self.negative_hits,
            "coalesced": self.coalesced,
            "loads": self.loads,
            "load_errors": self.load_errors,
            "load_seconds": round(self.load_seconds, 6),
            "early_refreshes": self.early_refreshes,
            "refresh_loads": self.refresh_loads,
            "hit_rate": (self.memory_hits + self.redis_hits) / requests if requests else 0.0,
        }


class CacheStats:
    def __init__(self) -> None:
        self._kinds: dict[str, KindStats] = {}

    def kind(self, kind: str) -> KindStats:
        stats = self._kinds.get(kind)
        if stats is None:
            if len(self._kinds) >= metrics.MAX_KINDS or len(kind) > metrics.MAX_KIND_LENGTH:
                kind = metrics.OTHER_KIND
            stats = self._kinds.get(kind)
            if stats is None:
                stats = self._kinds[kind] = KindStats(metrics.kind_label(kind))
        return stats

    def summary(self) -> dict[str, Any]:
        kinds = {label: stats.as_dict() for label, stats in sorted(self._kinds.items())}
        totals = {
            name: sum(k[name] for k in kinds.values())
            for name in ("requests", "memory_hits", "redis_hits", "negative_hits", "coalesced", "loads")
        }
        hits = totals["memory_hits"] + totals["redis_hits"]
        return {
            **totals,
            "hit_rate": hits / totals["requests"] if totals["requests"] else 0.0,
            "kinds": kinds,
        }

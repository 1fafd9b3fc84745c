"""The cache the app uses: tier 1 in this process, the shared tier 2, the loader (database) last.

`Cache` puts the jobs together: the read path (`reads.ReadPath`, which it extends, so a tier-1
hit costs no extra call), invalidation (`invalidation.Invalidator`) and generations, around one
tier 1 and one `SharedTier`: Redis in scale-out mode (`redis_shared.py`), none in embedded mode
(`shared.NoSharedTier`). It never asks which one it has; `build_shared_tier` chooses once.

Writes invalidate: `delete` removes the key here and in tier 2 and tells every other instance
to drop its tier-1 copy. A failure of tier 2 never fails a call: reads degrade to the loader,
invalidations are replayed when it is back, and while invalidations may be missed, tier 1
keeps entries only for `degraded_local_ttl` seconds, which bounds how stale they can get.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .generations import Generations
from .invalidation import Invalidator
from .memory import Clock, MemoryTier
from .purge import EdgePurger, build_purger
from .reads import ReadPath
from .settings import KIND_TTLS, CacheSettings
from .shared import NoSharedTier, SharedTier

if TYPE_CHECKING:
    from tableforge.config import Settings

__all__ = ["KIND_TTLS", "Cache", "CacheSettings", "build_cache"]


class Cache(ReadPath):
    """Tiered get-or-load with cross-instance invalidation (see the module docstring).

    `settings` holds every knob (see `CacheSettings`); `shared` replaces the tier 2 the
    settings would build; `clock`/`rand` are injectable for tests (wall clock seconds;
    XFetch's uniform draw); `edge` purges a Varnish/CDN in front of the app (tier 3).
    """

    def __init__(
        self,
        settings: CacheSettings | None = None,
        *,
        shared: SharedTier | None = None,
        clock: Clock = time.time,
        rand: Callable[[], float] = random.random,
        edge: EdgePurger | None = None,
    ) -> None:
        settings = settings if settings is not None else CacheSettings()
        self.settings = settings
        self.instance_id = settings.instance_id or f"cache-{secrets.token_hex(4)}"
        if shared is None:
            shared = build_shared_tier(settings, instance_id=self.instance_id, clock=clock)
        super().__init__(settings, shared, clock=clock, rand=rand)
        self.edge = edge
        self._started = False
        self._generations = Generations(
            shared,
            guard=self._guard,
            clock=clock,
            ttl=settings.generation_ttl,
            degraded_ttl=settings.degraded_local_ttl,
        )
        self._invalidator = Invalidator(
            shared=shared,
            memory=self._memory,
            guard=self._guard,
            flights=self._flights,
            generations=self._generations,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and subscribe. Never raises for an absent Redis: the cache starts degraded."""
        if self._started:
            return
        self._started = True
        await self._shared.start(self._invalidator)

    async def close(self) -> None:
        if self.edge is not None:
            await self.edge.close()
        await self._refreshing.cancel_all()
        await self._flights.cancel_all()
        await self._shared.close()
        self._memory.close()

    @property
    def healthy(self) -> bool:
        """Embedded: always. Scale-out: Redis usable and invalidations being received."""
        return self._shared.healthy

    @property
    def memory(self) -> MemoryTier:
        return self._memory

    @property
    def shared(self) -> SharedTier:
        return self._shared

    # -- invalidation ------------------------------------------------------------------------

    async def delete(self, *keys: str) -> None:
        """Delete keys from every tier on every instance. Never raises; if Redis is unreachable
        the deletion is remembered and replayed when it comes back."""
        await self._invalidator.delete(keys)

    async def invalidate_pattern(self, pattern: str) -> int:
        """Delete every key matching a glob (`*`, `?`, `[abc]`), on every instance.

        Redis is walked with SCAN, never KEYS, which is O(keyspace) per call: for families of keys
        on hot paths prefer `generation`/`bump_generation`. Returns the number of tier-2 values
        removed (tier-1 entries removed in memory-only mode or when Redis is unreachable).
        """
        return await self._invalidator.invalidate_pattern(pattern)

    async def generation(self, tag: str) -> int:
        """The current generation of a family of keys; build keys with it (`catalog:g{n}:page:2`)
        and `bump_generation` to orphan the whole family in O(1). Orphans expire by TTL."""
        return await self._generations.get(tag)

    async def bump_generation(self, tag: str) -> None:
        """Move a family of keys to a new generation, on every instance."""
        await self._invalidator.bump_generation(tag)

    async def purge_edge(self, *keys: str) -> None:
        """Purge surrogate keys from the HTTP edge (Varnish/CDN), if one is configured. Waits a
        bounded time for the edge's answer (see purge.EdgePurger); never raises."""
        if self.edge is not None and keys:
            await self.edge.purge(*keys)

    # -- introspection -----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters of this instance: per tier, per kind, hit rate, sizes, evictions."""
        summary = self._stats.summary()
        return {
            "instance_id": self.instance_id,
            "mode": self._shared.mode,
            "healthy": self.healthy,
            **summary,
            "memory": self._memory.stats(),
            "redis": self._shared.stats(summary["redis_hits"]),
            "in_flight": len(self._flights),
            "refreshing": len(self._refreshing),
            "stale_discards": self._stale_discards,
            "edge": self.edge.stats() if self.edge is not None else {"enabled": False},
            "lock_waits": dict(self._lock_waits),
            "invalidations": self._shared.invalidation_stats(),
        }

    async def redis_info(self) -> dict[str, Any]:
        """The shared tier's memory and our key count (via SCAN) for admin pages; cheap to call
        rarely. `{"enabled": false, "healthy": true}` when there is none."""
        return await self._shared.info()


def build_cache(settings: Settings, **overrides: Any) -> Cache:
    """The cache for these settings: no shared tier when `redis_url` is None. `overrides` name
    fields of `CacheSettings` (a Redis namespace's `prefix`, knobs that are not settings yet)."""
    return Cache(CacheSettings.from_settings(settings, **overrides), edge=build_purger(settings))


def build_shared_tier(settings: CacheSettings, *, instance_id: str, clock: Clock) -> SharedTier:
    """Redis when a URL is configured, else none. The Redis client is imported only then."""
    if settings.redis_url is None:
        return NoSharedTier()
    from .redis_shared import RedisShared

    return RedisShared(settings.redis_url, settings, instance_id=instance_id, clock=clock)

"""The read path: tier 1 → tier 2 → loader, with single flight, fill leases and early refresh.

One load per key per process at a time (single flight), and a short lease per key in the
shared tier so that N instances do not all load it at once (the others poll tier 2 for the
winner's value, then load themselves after `lock_wait`, so nothing hangs). A loader answering
None is remembered as "missing" for `negative_ttl`. Hot keys refresh in the background shortly
before they expire (XFetch), so they do not expire for everyone at once.

Every tier-2 step goes through `SharedTier`; with no shared tier (embedded mode) it is never
`readable`, so a tier-1 miss goes straight to the loader, as when Redis is down.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

import structlog

from . import metrics
from .entry import Entry, should_refresh_early
from .flight import SingleFlight, StaleGuard, Watch
from .memory import Clock, MemoryTier
from .settings import CacheSettings
from .shared import SharedTier
from .stats import CacheStats, KindStats

T = TypeVar("T")
log = structlog.get_logger("tableforge.cache")


class ReadPath:
    """Tiered get-or-load; `Cache` adds invalidation and lifecycle on top (tiered.py)."""

    def __init__(
        self,
        settings: CacheSettings,
        shared: SharedTier,
        *,
        clock: Clock = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._shared = shared
        self._clock = clock
        self._rand = rand
        self._default_ttl = settings.default_ttl
        self._kind_ttls = dict(settings.kind_ttls)
        self._negative_ttl = settings.negative_ttl
        self._lock_ttl = settings.lock_ttl
        self._lock_wait = settings.lock_wait
        self._beta = settings.early_refresh_beta
        self._min_delta = settings.early_refresh_min_delta
        self._max_refreshes = settings.max_refreshes
        self._degraded_local_ttl = settings.degraded_local_ttl
        self._memory = MemoryTier(
            settings.max_size, eviction=settings.eviction, ttl_cap=settings.ttl_cap(), clock=clock
        )
        self._flights = SingleFlight()
        self._refreshing = SingleFlight()
        self._guard = StaleGuard()
        self._stats = CacheStats()
        self._stale_discards = 0
        self._lock_waits = {"filled": 0, "acquired": 0, "timeout": 0}

    # -- reads -------------------------------------------------------------------------------

    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        *,
        ttl: float | None = None,
        kind: str = "default",
    ) -> T:
        """The value for `key` from the nearest tier that has it, else from `loader()`.

        `loader` returning None means "does not exist": None is cached for `negative_ttl`.
        Values must be plain data (see codec.Codec) and are shared: do not mutate them.
        The loader may run for other callers too (single flight) and after this call returned
        (early refresh), so it must acquire its own resources (a fresh session/connection),
        not borrow the calling request's.
        """
        started = time.perf_counter()
        now = self._clock()
        counters = self._stats.kind(kind)
        entry = self._memory.get(key, now)
        if entry is not None:
            metrics.LOOKUP_MEMORY.observe(time.perf_counter() - started)
            counters.memory_hit(entry.missing)
            if should_refresh_early(entry, now, beta=self._beta, min_delta=self._min_delta, rand=self._rand):
                self._refresh_early(key, entry, loader, ttl, kind, counters)
            return cast(T, entry.value)
        counters.memory_miss()
        task = self._flights.get(key)
        if task is None:
            task = self._flights.start(key, self._fill(key, loader, ttl, kind, counters, started))
        else:
            counters.coalesce()
        return cast(T, await asyncio.shield(task))

    async def get_many_or_load(
        self,
        keys: Sequence[str],
        loader: Callable[[list[str]], Awaitable[dict[str, T]]],
        *,
        ttl: float | None = None,
        kind: str = "default",
    ) -> dict[str, T]:
        """Values for many keys: one tier-1 pass, one MGET, one loader call with only the misses,
        one pipelined write. Keys the loader does not return are cached as missing and left out
        of the result.
        """
        started = time.perf_counter()
        counters = self._stats.kind(kind)
        wanted = list(dict.fromkeys(keys))
        now = self._clock()
        found: dict[str, Any] = {}
        misses: list[str] = []
        negatives = 0
        for key in wanted:
            entry = self._memory.get(key, now)
            if entry is None:
                misses.append(key)
            elif entry.missing:
                negatives += 1
            else:
                found[key] = entry.value
        counters.memory_hits_many(len(wanted) - len(misses), negatives)
        counters.memory_miss(len(misses))
        if not misses:
            metrics.LOOKUP_MEMORY.observe(time.perf_counter() - started)
        else:
            with self._guard.watch(misses) as watch:
                if self._shared.readable:
                    entries = await self._shared.mget(misses)
                    negatives = 0
                    for key, entry in entries.items():
                        if entry.missing:
                            negatives += 1
                        else:
                            found[key] = entry.value
                    counters.redis_hits_many(len(entries), negatives)
                    self._store_local_many(entries.items(), watch, self._clock())
                    misses = [key for key in misses if key not in entries]
                    counters.redis_miss(len(misses))
                lookup = metrics.LOOKUP_MISS if misses else metrics.LOOKUP_REDIS
                lookup.observe(time.perf_counter() - started)
                if misses:
                    found.update(await self._load_many(misses, loader, ttl, kind, counters, watch))
        return {key: found[key] for key in wanted if key in found}

    async def _fill(
        self, key: str, loader: Callable[[], Awaitable[Any]], ttl: float | None, kind: str, counters: KindStats,
        started: float,
    ) -> Any:
        """The single-flight body: tier 2, then the lock, then the loader. `started`: when the
        lookup began (perf_counter), for the lookup-latency histogram."""
        with self._guard.watch((key,)) as watch:
            shared = self._shared
            if not shared.readable:
                metrics.LOOKUP_MISS.observe(time.perf_counter() - started)
                return await self._load(key, loader, ttl, kind, counters, watch, None)
            entry = await shared.get(key)
            if entry is not None:
                # Tier 2 enforces the TTL; the envelope's expiry only informs tier 1 and early
                # refresh, which later tier-1 hits decide on.
                metrics.LOOKUP_REDIS.observe(time.perf_counter() - started)
                counters.redis_hit(entry.missing)
                self._store_local(key, entry, watch, self._clock())
                return entry.value
            metrics.LOOKUP_MISS.observe(time.perf_counter() - started)
            counters.redis_miss()
            token = await shared.acquire_lock(key, self._lock_ttl)
            if token is None and shared.readable:
                entry, token = await self._wait_for_filler(shared, key, watch, counters)
                if entry is not None:
                    return entry.value
            return await self._load(key, loader, ttl, kind, counters, watch, token)

    async def _wait_for_filler(
        self, shared: SharedTier, key: str, watch: Watch, counters: KindStats
    ) -> tuple[Entry | None, str | None]:
        """Another instance holds the key's lock: poll tier 2 for its value, or for the lock,
        until `lock_wait` runs out. Returns (entry found, None) or (None, our token or None)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lock_wait
        delay = 0.005
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.1)
            entry = await shared.get(key)
            if entry is not None:
                self._count_lock_wait("filled")
                counters.redis_hit(entry.missing)
                self._store_local(key, entry, watch, self._clock())
                return entry, None
            token = await shared.acquire_lock(key, self._lock_ttl)
            if token is not None:
                self._count_lock_wait("acquired")
                return None, token
            if not shared.readable:
                return None, None
        self._count_lock_wait("timeout")
        log.warning("cache.lock_wait_timeout", key=key, waited=self._lock_wait)
        return None, None

    def _count_lock_wait(self, outcome: str) -> None:
        self._lock_waits[outcome] += 1
        metrics.LOCK_WAITS.labels(outcome=outcome).inc()

    def _ttl_for(self, ttl: float | None, kind: str) -> float:
        return ttl if ttl is not None else self._kind_ttls.get(kind, self._default_ttl)

    async def _load(
        self,
        key: str,
        loader: Callable[[], Awaitable[Any]],
        ttl: float | None,
        kind: str,
        counters: KindStats,
        watch: Watch,
        token: str | None,
        *,
        background: bool = False,
    ) -> Any:
        """Run the loader and store its value in both tiers, unless the key was invalidated
        meanwhile. With a lock token, tier 2 is written only while the lease is intact."""
        released = token is None
        try:
            started = time.perf_counter()
            try:
                value = await loader()
            except Exception:
                counters.load_failed()
                raise
            delta = time.perf_counter() - started
            counters.loaded(delta, background=background)
            seconds = self._ttl_for(ttl, kind)
            if value is None:
                seconds = min(seconds, self._negative_ttl)
            now = self._clock()
            entry = Entry(value, now + seconds, delta)
            if watch.is_stale(key):
                self._discard_stale()
                return value
            if token is not None:
                released = True
                await self._shared.set_if_locked(key, token, entry, seconds)
            elif await self._shared.set(key, entry, seconds) and watch.is_stale(key):
                # No lease protected this write and a delete ran meanwhile: the delete's
                # UNLINK may have reached Redis before our SET, so undo the SET.
                await self._shared.unset(key)
            self._store_local(key, entry, watch, now)
            return value
        finally:
            if not released and token is not None:
                await self._shared.release_lock(key, token)

    async def _load_many(
        self,
        keys: list[str],
        loader: Callable[[list[str]], Awaitable[dict[str, Any]]],
        ttl: float | None,
        kind: str,
        counters: KindStats,
        watch: Watch,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            loaded = await loader(list(keys))
        except Exception:
            counters.load_failed(len(keys))
            raise
        delta = time.perf_counter() - started
        counters.loaded(delta, len(keys))
        seconds = self._ttl_for(ttl, kind)
        now = self._clock()
        values: dict[str, Any] = {}
        items: list[tuple[str, Entry, float]] = []
        for key in keys:
            value = loaded.get(key)
            life = seconds if value is not None else min(seconds, self._negative_ttl)
            if value is not None:
                values[key] = value
            if watch.is_stale(key):
                self._discard_stale()
                continue
            items.append((key, Entry(value, now + life, delta), life))
        if items:
            await self._shared.mset(items)
        self._store_local_many(((key, entry) for key, entry, _ in items), watch, now)
        return values

    def _store_local(self, key: str, entry: Entry, watch: Watch | None, now: float) -> None:
        if watch is not None and watch.is_stale(key):
            self._discard_stale()
            return
        if self._shared.deaf:
            # Invalidations may be missed: keep it only briefly.
            entry = entry.capped(now + self._degraded_local_ttl)
        self._memory.set(key, entry, now)

    def _store_local_many(self, items: Iterable[tuple[str, Entry]], watch: Watch, now: float) -> None:
        deaf = self._shared.deaf
        keep: list[tuple[str, Entry]] = []
        for key, entry in items:
            if watch.is_stale(key):
                self._discard_stale()
            else:
                keep.append((key, entry.capped(now + self._degraded_local_ttl) if deaf else entry))
        self._memory.set_many(keep, now)

    def _discard_stale(self) -> None:
        self._stale_discards += 1
        metrics.STALE_DISCARDS.inc()

    # -- early refresh -----------------------------------------------------------------------

    def _refresh_early(
        self,
        key: str,
        current: Entry,
        loader: Callable[[], Awaitable[Any]],
        ttl: float | None,
        kind: str,
        counters: KindStats,
    ) -> None:
        if key in self._refreshing or key in self._flights or len(self._refreshing) >= self._max_refreshes:
            return
        counters.early_refresh()
        self._refreshing.start(key, self._refresh(key, current, loader, ttl, kind, counters))

    async def _refresh(
        self,
        key: str,
        current: Entry,
        loader: Callable[[], Awaitable[Any]],
        ttl: float | None,
        kind: str,
        counters: KindStats,
    ) -> None:
        """Reload a hot key in the background. Across instances only the lock holder reloads;
        an instance that finds a fresher value in tier 2 adopts it instead."""
        try:
            with self._guard.watch((key,)) as watch:
                token = None
                shared = self._shared
                if shared.readable:
                    fresher = await shared.get(key)
                    if fresher is not None and fresher.expires_at > current.expires_at:
                        self._store_local(key, fresher, watch, self._clock())
                        return
                    token = await shared.acquire_lock(key, self._lock_ttl)
                    if token is None and shared.readable:
                        return  # another instance is refreshing it
                await self._load(key, loader, ttl, kind, counters, watch, token, background=True)
        except Exception:
            log.warning("cache.refresh_failed", key=key, exc_info=True)

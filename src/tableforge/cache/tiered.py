"""The cache the app uses: tier 1 in this process, tier 2 in Redis, the loader (database) last.

Reads: tier 1 → tier 2 → loader, with one load per key per process at a time (single flight)
and a short Redis lock per key so that N instances do not all load it at once (the others
poll tier 2 for the winner's value, then load themselves after `lock_wait`, so nothing hangs).
A loader answering None is remembered as "missing" for `negative_ttl`. Hot keys refresh in the
background shortly before they expire (XFetch), so they do not expire for everyone at once.

Writes invalidate: `delete` removes the key here, UNLINKs it (and its fill lease) in Redis,
then PUBLISHes it on `{prefix}invalidate`; every other instance drops its tier-1 copy.

Why our own pub/sub channel rather than Redis client-side caching (CLIENT TRACKING ... BCAST):
- Tracking invalidates on *every* modification of a tracked prefix, including the tier-2 fill
  that follows each miss: one instance filling a key would evict it from every other
  instance's tier 1, which is churn on exactly the hot keys tier 1 exists for. We invalidate
  only when the application writes.
- Our messages carry the sender's id and batch many keys, glob patterns and generation tags in
  one message; tracking sends one notification per key and has no notion of the latter two.
- redis-py offers client-side caching only on its sync client with RESP3; with redis.asyncio
  we would hand-roll RESP3 push handling or a REDIRECT connection per pooled connection.
- Tier 1 holds decoded Python objects, not the raw replies tracking is designed around.
- Delivery guarantees are the same: both are at-most-once and need "flush everything after a
  reconnect", which the listener does. Tracking would save us nothing there.

A Redis failure never fails a call: the Redis tier degrades to misses/no-ops and recovers by
itself; invalidations it could not deliver are replayed when it is back; and while the
subscription is down, tier 1 keeps entries only for `degraded_local_ttl` seconds, which bounds
how stale a value missed invalidations can make it.

In memory-only mode (no Redis URL) all of this is local and the same API holds.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import structlog

from . import metrics
from .codec import Codec, Serialization
from .entry import Entry, should_refresh_early
from .flight import SingleFlight, StaleGuard, Watch
from .generations import Generations
from .invalidation import Invalidation, InvalidationListener, PendingInvalidations, key_messages
from .memory import Clock, Eviction, MemoryTier
from .purge import EdgePurger, build_purger
from .redis_tier import DEFAULT_PREFIX, RedisTier
from .stats import CacheStats, KindStats

if TYPE_CHECKING:
    from tableforge.config import Settings

T = TypeVar("T")
log = structlog.get_logger("tableforge.cache")

# Per-kind TTLs (DESIGN.md, Caching). `kind` is also the metrics label: keep it a small fixed set.
KIND_TTLS: Final[Mapping[str, float]] = {
    "session": 3600.0,
    "room": 3600.0,
    "asset": 3600.0,
    "system": 7200.0,
    "query": 180.0,
}


class Cache:
    """Tiered get-or-load with cross-instance invalidation (see the module docstring).

    Knobs that are not settings (yet), with the reason for each default:
    - `kind_ttls`: TTL per kind when a call gives none; `negative_ttl` (30 s) caps "missing"
      markers so a row created elsewhere shows up soon even without an invalidation.
    - `lock_ttl` (10 s) bounds how long a crashed filler blocks a key; a load slower than it
      is still returned and kept in tier 1, but not stored in tier 2 (its lease expired).
    - `lock_wait` (2 s): how long other instances wait for the filler before loading anyway.
    - `early_refresh_beta`/`early_refresh_min_delta`: XFetch's β and a floor on the measured
      load time (50 ms) so fast loaders still refresh a little ahead; β=0 disables it.
    - `degraded_local_ttl` (5 s): tier-1 lifetime while the invalidation subscription is down.
    - `generation_ttl` (60 s): how long a generation value is trusted without a message.
    - `max_pending_invalidations`: invalidations kept for replay after an outage.
    - `redis_options`: passed to RedisTier (max_connections, timeouts).
    - `clock`/`rand`: injectable for tests (wall clock seconds; XFetch's uniform draw).
    """

    def __init__(
        self,
        *,
        max_size: int = 10_000,
        default_ttl: float = 300.0,
        eviction: Eviction = "lru",
        redis_url: str | None = None,
        instance_id: str | None = None,
        serialization: Serialization = "msgpack",
        compression: bool = True,
        prefix: str = DEFAULT_PREFIX,
        kind_ttls: Mapping[str, float] | None = None,
        negative_ttl: float = 30.0,
        lock_ttl: float = 10.0,
        lock_wait: float = 2.0,
        early_refresh_beta: float = 1.0,
        early_refresh_min_delta: float = 0.05,
        max_refreshes: int = 256,
        degraded_local_ttl: float = 5.0,
        generation_ttl: float = 60.0,
        max_pending_invalidations: int = 10_000,
        subscribe_wait: float = 2.0,
        redis_options: Mapping[str, Any] | None = None,
        clock: Clock = time.time,
        rand: Callable[[], float] = random.random,
        edge: EdgePurger | None = None,
    ) -> None:
        # Tier 3: purges for a Varnish/CDN in front of the app (None: no edge configured).
        self.edge = edge
        self.instance_id = instance_id or f"cache-{secrets.token_hex(4)}"
        self._clock = clock
        self._rand = rand
        self._default_ttl = default_ttl
        self._kind_ttls = dict(kind_ttls or {})
        self._negative_ttl = negative_ttl
        self._lock_ttl = lock_ttl
        self._lock_wait = lock_wait
        self._beta = early_refresh_beta
        self._min_delta = early_refresh_min_delta
        self._max_refreshes = max_refreshes
        self._degraded_local_ttl = degraded_local_ttl
        self._subscribe_wait = subscribe_wait
        ttl_cap = max([default_ttl, *self._kind_ttls.values()])
        self._memory = MemoryTier(max_size, eviction=eviction, ttl_cap=ttl_cap, clock=clock)
        self._flights = SingleFlight()
        self._refreshing = SingleFlight()
        self._guard = StaleGuard()
        self._pending = PendingInvalidations(max_pending_invalidations)
        self._stats = CacheStats()
        self._sent = 0
        self._stale_discards = 0
        self._lock_waits = {"filled": 0, "acquired": 0, "timeout": 0}
        self._started = False
        self._redis: RedisTier | None = None
        self._listener: InvalidationListener | None = None
        if redis_url is not None:
            codec = Codec(serialization, compression=compression)
            self._redis = RedisTier(redis_url, codec=codec, prefix=prefix, **dict(redis_options or {}))
            self._redis.on_recover = self._replay_pending
            self._listener = InvalidationListener(
                self._redis, instance_id=self.instance_id, on_message=self._apply, on_reset=self._flush_local
            )
        self._generations = Generations(
            self._redis,
            instance_id=self.instance_id,
            guard=self._guard,
            pending=self._pending,
            clock=clock,
            ttl=generation_ttl,
            degraded_ttl=degraded_local_ttl,
            deaf=self._deaf,
            on_sent=lambda: self._count_sent("generation"),
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and subscribe. Never raises for an absent Redis: the cache starts degraded."""
        if self._started or self._redis is None or self._listener is None:
            return
        self._started = True
        up = await self._redis.start()
        # Wait for the subscription only if Redis answered, so a dead Redis does not slow boot.
        await self._listener.start(wait=self._subscribe_wait if up else 0.0)
        log.info("cache.started", instance=self.instance_id, redis=up, subscribed=self._listener.subscribed)

    async def close(self) -> None:
        if self.edge is not None:
            await self.edge.close()
        if self._listener is not None:
            await self._listener.close()
        await self._refreshing.cancel_all()
        await self._flights.cancel_all()
        if self._redis is not None:
            await self._redis.close()
        self._memory.close()

    @property
    def healthy(self) -> bool:
        """Memory-only: always. Scale-out: Redis usable and invalidations being received."""
        if self._redis is None or self._listener is None:
            return True
        return self._redis.healthy and self._listener.subscribed

    @property
    def memory(self) -> MemoryTier:
        return self._memory

    @property
    def redis(self) -> RedisTier | None:
        return self._redis

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
                if self._redis is not None and self._redis.healthy:
                    entries = await self._redis.mget(misses)
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
            redis = self._redis
            if redis is None or not redis.healthy:
                metrics.LOOKUP_MISS.observe(time.perf_counter() - started)
                return await self._load(key, loader, ttl, kind, counters, watch, None)
            entry = await redis.get(key)
            if entry is not None:
                # Redis enforces the TTL; the envelope's expiry only informs tier 1 and early
                # refresh, which later tier-1 hits decide on.
                metrics.LOOKUP_REDIS.observe(time.perf_counter() - started)
                counters.redis_hit(entry.missing)
                self._store_local(key, entry, watch, self._clock())
                return entry.value
            metrics.LOOKUP_MISS.observe(time.perf_counter() - started)
            counters.redis_miss()
            token = await redis.acquire_lock(key, self._lock_ttl)
            if token is None and redis.healthy:
                entry, token = await self._wait_for_filler(redis, key, watch, counters)
                if entry is not None:
                    return entry.value
            return await self._load(key, loader, ttl, kind, counters, watch, token)

    async def _wait_for_filler(
        self, redis: RedisTier, key: str, watch: Watch, counters: KindStats
    ) -> tuple[Entry | None, str | None]:
        """Another instance holds the key's lock: poll tier 2 for its value, or for the lock,
        until `lock_wait` runs out. Returns (entry found, None) or (None, our token or None)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lock_wait
        delay = 0.005
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.1)
            entry = await redis.get(key)
            if entry is not None:
                self._count_lock_wait("filled")
                counters.redis_hit(entry.missing)
                self._store_local(key, entry, watch, self._clock())
                return entry, None
            token = await redis.acquire_lock(key, self._lock_ttl)
            if token is not None:
                self._count_lock_wait("acquired")
                return None, token
            if not redis.healthy:
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
            if self._redis is not None:
                if token is not None:
                    released = True
                    await self._redis.set_if_locked(key, token, entry, seconds)
                elif await self._redis.set(key, entry, seconds) and watch.is_stale(key):
                    # No lease protected this write and a delete ran meanwhile: the delete's
                    # UNLINK may have reached Redis before our SET, so undo the SET.
                    await self._redis.delete([key], ())
            self._store_local(key, entry, watch, now)
            return value
        finally:
            if not released and self._redis is not None and token is not None:
                await self._redis.release_lock(key, token)

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
        if self._redis is not None and items:
            await self._redis.mset(items)
        self._store_local_many(((key, entry) for key, entry, _ in items), watch, now)
        return values

    def _store_local(self, key: str, entry: Entry, watch: Watch | None, now: float) -> None:
        if watch is not None and watch.is_stale(key):
            self._discard_stale()
            return
        if self._deaf():
            # Invalidations may be missed: keep it only briefly.
            entry = entry.capped(now + self._degraded_local_ttl)
        self._memory.set(key, entry, now)

    def _store_local_many(self, items: Iterable[tuple[str, Entry]], watch: Watch, now: float) -> None:
        deaf = self._deaf()
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
                redis = self._redis
                if redis is not None and redis.healthy:
                    fresher = await redis.get(key)
                    if fresher is not None and fresher.expires_at > current.expires_at:
                        self._store_local(key, fresher, watch, self._clock())
                        return
                    token = await redis.acquire_lock(key, self._lock_ttl)
                    if token is None and redis.healthy:
                        return  # another instance is refreshing it
                await self._load(key, loader, ttl, kind, counters, watch, token, background=True)
        except Exception:
            log.warning("cache.refresh_failed", key=key, exc_info=True)

    # -- invalidation ------------------------------------------------------------------------

    async def delete(self, *keys: str) -> None:
        """Delete keys from every tier on every instance. Never raises; if Redis is unreachable
        the deletion is remembered and replayed when it comes back."""
        if not keys:
            return
        unique = list(dict.fromkeys(keys))
        self._drop_local(unique)
        if self._redis is None:
            return
        messages = key_messages(self.instance_id, unique)
        if await self._redis.delete(unique, messages):
            self._count_sent("keys", len(messages))
        else:
            self._pending.add_keys(unique)

    async def invalidate_pattern(self, pattern: str) -> int:
        """Delete every key matching a glob (`*`, `?`, `[abc]`), on every instance.

        Redis is walked with SCAN, never KEYS, which is O(keyspace) per call: for families of keys
        on hot paths prefer `generation`/`bump_generation`. Returns the number of tier-2 values
        removed (tier-1 entries removed in memory-only mode or when Redis is unreachable).
        """
        local = self._memory.delete_matching(pattern)
        self._guard.invalidate_matching(pattern)
        self._flights.forget_matching(pattern)
        if self._redis is None:
            return local
        removed = await self._redis.scan_unlink(pattern)
        message = Invalidation(self.instance_id, patterns=(pattern,)).encode()
        if removed is None or not await self._redis.publish([message]):
            self._pending.add_pattern(pattern)
            return local if removed is None else removed
        self._count_sent("pattern")
        return removed

    async def generation(self, tag: str) -> int:
        """The current generation of a family of keys; build keys with it (`catalog:g{n}:page:2`)
        and `bump_generation` to orphan the whole family in O(1). Orphans expire by TTL."""
        return await self._generations.get(tag)

    async def bump_generation(self, tag: str) -> None:
        """Move a family of keys to a new generation, on every instance."""
        await self._generations.bump(tag)

    async def purge_edge(self, *keys: str) -> None:
        """Purge surrogate keys from the HTTP edge (Varnish/CDN), if one is configured. Waits a
        bounded time for the edge's answer (see purge.EdgePurger); never raises."""
        if self.edge is not None and keys:
            await self.edge.purge(*keys)

    def _deaf(self) -> bool:
        """True while invalidations from other instances may be missed."""
        return self._listener is not None and not self._listener.subscribed

    def _count_sent(self, kind: str, n: int = 1) -> None:
        self._sent += n
        metrics.INVALIDATIONS_SENT.labels(type=kind).inc(n)

    def _drop_local(self, keys: Sequence[str]) -> None:
        self._memory.delete(keys)
        self._guard.invalidate(keys)
        self._flights.forget(keys)

    def _flush_local(self) -> None:
        self._memory.clear()
        self._guard.invalidate_all()
        self._flights.forget_all()
        self._generations.clear()

    def _apply(self, message: Invalidation) -> None:
        """An invalidation from another instance: drop what it names from tier 1."""
        if message.flush:
            self._flush_local()
            return
        if message.keys:
            self._drop_local(message.keys)
        for pattern in message.patterns:
            self._memory.delete_matching(pattern)
            self._guard.invalidate_matching(pattern)
            self._flights.forget_matching(pattern)
        for tag in message.tags:
            self._generations.forget(tag)

    async def _replay_pending(self) -> bool:
        """Deliver the invalidations that failed while Redis was down (called while RECOVERING)."""
        redis = self._redis
        pending = self._pending.take()
        if redis is None or not pending:
            return True
        ok = True
        if pending.overflow:
            ok = await redis.scan_unlink("*") is not None and await redis.publish(
                [Invalidation(self.instance_id, flush=True).encode()]
            )
            if ok:
                self._count_sent("flush")
        else:
            if pending.keys:
                keys = sorted(pending.keys)
                messages = key_messages(self.instance_id, keys)
                ok = await redis.delete(keys, messages)
                if ok:
                    self._count_sent("keys", len(messages))
            for pattern in sorted(pending.patterns):
                ok = ok and await redis.scan_unlink(pattern) is not None
                ok = ok and await redis.publish([Invalidation(self.instance_id, patterns=(pattern,)).encode()])
        for tag in sorted(pending.tags):
            message = self._generations.message(tag)
            ok = ok and await redis.bump_generation(tag, self._generations.baseline(), message) is not None
        if not ok:
            self._pending.merge(pending)
        log.info("cache.pending_replayed", ok=ok, keys=len(pending.keys), overflow=pending.overflow)
        return ok

    # -- introspection -----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters of this instance: per tier, per kind, hit rate, sizes, evictions."""
        summary = self._stats.summary()
        redis: dict[str, Any] | None = None
        if self._redis is not None and self._listener is not None:
            redis = {
                **self._redis.stats(),
                "subscribed": self._listener.subscribed,
                "hits": summary["redis_hits"],
                "pending_invalidations": len(self._pending),
                "pending_overflow": self._pending.overflow,
            }
        return {
            "instance_id": self.instance_id,
            "mode": "memory" if self._redis is None else "redis",
            "healthy": self.healthy,
            **summary,
            "memory": self._memory.stats(),
            "redis": redis,
            "in_flight": len(self._flights),
            "refreshing": len(self._refreshing),
            "stale_discards": self._stale_discards,
            "edge": self.edge.stats() if self.edge is not None else {"enabled": False},
            "lock_waits": dict(self._lock_waits),
            "invalidations": {
                "sent": self._sent,
                "received": self._listener.received if self._listener is not None else 0,
                "local_flushes": self._listener.resets if self._listener is not None else 0,
            },
        }

    async def redis_info(self) -> dict[str, Any]:
        """Redis memory and our key count (via SCAN) for admin pages; cheap to call rarely."""
        if self._redis is None:
            return {"enabled": False, "healthy": True}
        info = await self._redis.info()
        return {
            "enabled": True,
            "healthy": self.healthy,
            "state": self._redis.state.value,
            "subscribed": self._listener.subscribed if self._listener is not None else False,
            "prefix": self._redis.prefix,
            "used_memory": info.get("used_memory"),
            "used_memory_human": info.get("used_memory_human"),
            "maxmemory": info.get("maxmemory"),
            "maxmemory_policy": info.get("maxmemory_policy"),
            "keys": info.get("keys"),
        }


def build_cache(settings: Settings, **overrides: Any) -> Cache:
    """The cache for these settings: memory-only when `redis_url` is None. `overrides` reach
    `Cache` directly (tests, tuning knobs that are not settings yet)."""
    options: dict[str, Any] = {
        "max_size": settings.cache_max_size,
        "default_ttl": settings.cache_default_ttl,
        "eviction": settings.cache_eviction,
        "redis_url": settings.redis_url,
        "instance_id": settings.instance_id,
        "serialization": settings.cache_serialization,
        "compression": settings.cache_compression,
        "kind_ttls": KIND_TTLS,
        "edge": build_purger(settings),
    }
    options.update(overrides)
    return Cache(**options)

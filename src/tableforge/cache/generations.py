"""Generation counters: O(1) invalidation of a whole family of keys.

The app builds keys with the current generation (`catalog:g{n}:page:2`); bumping the counter
orphans every key of the old generation at once (they expire by TTL), with no SCAN and no
list of keys. The counter lives in Redis (INCR + PUBLISH in one script); each instance keeps
the value in memory and drops it when the bump's message arrives. In memory-only mode, and as
a fallback while Redis is unreachable, the counter is local.

A counter that is created (or recreated after Redis lost it) starts at the current time in
milliseconds, so it never returns to a number that keys still cached were built with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from cachetools import LRUCache

from .flight import StaleGuard
from .invalidation import Invalidation, PendingInvalidations
from .memory import Clock
from .redis_tier import RedisTier

# Generation watches share the StaleGuard with data keys; this prefix cannot collide with a key.
WATCH_PREFIX: Final = "\x00gen:"
MAX_TAGS: Final = 1024


class Generations:
    def __init__(
        self,
        redis: RedisTier | None,
        *,
        instance_id: str,
        guard: StaleGuard,
        pending: PendingInvalidations,
        clock: Clock,
        ttl: float,
        degraded_ttl: float,
        deaf: Callable[[], bool],
        on_sent: Callable[[], None],
    ) -> None:
        self._redis = redis
        self._instance_id = instance_id
        self._guard = guard
        self._pending = pending
        self._clock = clock
        self._ttl = ttl
        self._degraded_ttl = degraded_ttl
        self._deaf = deaf
        self._on_sent = on_sent
        self._cached: LRUCache[str, tuple[int, float]] = LRUCache(MAX_TAGS)
        self._local: LRUCache[str, int] = LRUCache(MAX_TAGS)

    def baseline(self) -> int:
        """Where a new counter starts: the time in ms, ahead of any value an earlier counter
        reached unless it was bumped more than 1000 times a second."""
        return int(self._clock() * 1000)

    async def get(self, tag: str) -> int:
        now = self._clock()
        cached = self._cached.get(tag)
        if cached is not None and cached[1] > now:
            return cached[0]
        redis = self._redis
        if redis is None or not redis.healthy:
            return cached[0] if cached is not None else self._local_value(tag)
        watch_key = WATCH_PREFIX + tag
        with self._guard.watch((watch_key,)) as watch:
            value = await redis.generation(tag, self.baseline())
        if value is None:
            return cached[0] if cached is not None else self._local_value(tag)
        if not watch.is_stale(watch_key):  # a bump arriving mid-read must win
            self._remember(tag, value, now)
        return value

    async def bump(self, tag: str) -> None:
        cached = self._cached.pop(tag, None)
        self._guard.invalidate((WATCH_PREFIX + tag,))
        if self._redis is None:
            self._local[tag] = self._local_value(tag) + 1
            return
        value = await self._redis.bump_generation(tag, self.baseline(), self.message(tag))
        if value is None:
            # Keys built from now on must differ here too; Redis is bumped on recovery.
            previous = cached[0] if cached is not None else 0
            self._local[tag] = max(self._local_value(tag), previous) + 1
            self._pending.add_tag(tag)
            return
        self._on_sent()
        self._remember(tag, value, self._clock())

    def message(self, tag: str) -> bytes:
        return Invalidation(self._instance_id, tags=(tag,)).encode()

    def forget(self, tag: str) -> None:
        """Another instance bumped `tag`: re-read it from Redis next time."""
        self._cached.pop(tag, None)
        self._guard.invalidate((WATCH_PREFIX + tag,))

    def clear(self) -> None:
        self._cached.clear()

    def _remember(self, tag: str, value: int, now: float) -> None:
        life = min(self._ttl, self._degraded_ttl) if self._deaf() else self._ttl
        self._cached[tag] = (value, now + life)

    def _local_value(self, tag: str) -> int:
        value = self._local.get(tag)
        if value is None:
            value = self._local[tag] = self.baseline()
        return value

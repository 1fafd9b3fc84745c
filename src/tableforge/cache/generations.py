"""Generation counters: O(1) invalidation of a whole family of keys.

The app builds keys with the current generation (`catalog:g{n}:page:2`); bumping the counter
orphans every key of the old generation at once (they expire by TTL), with no SCAN and no
list of keys. The counter lives in the shared tier (Redis: INCR + PUBLISH in one script); each
instance keeps the value in memory and drops it when the bump's message arrives. With no shared
tier (embedded mode), and as a fallback while it is unreachable, the counter is local.

A counter that is created (or recreated after Redis lost it) starts at the current time in
milliseconds, so it never returns to a number that keys still cached were built with.
"""

from __future__ import annotations

from typing import Final

from cachetools import LRUCache

from .flight import StaleGuard
from .memory import Clock
from .shared import SharedTier

# Generation watches share the StaleGuard with data keys; this prefix cannot collide with a key.
WATCH_PREFIX: Final = "\x00gen:"
MAX_TAGS: Final = 1024


class Generations:
    def __init__(
        self,
        shared: SharedTier,
        *,
        guard: StaleGuard,
        clock: Clock,
        ttl: float,
        degraded_ttl: float,
    ) -> None:
        self._shared = shared
        self._guard = guard
        self._clock = clock
        self._ttl = ttl
        self._degraded_ttl = degraded_ttl
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
        shared = self._shared
        if not shared.readable:
            return cached[0] if cached is not None else self._local_value(tag)
        watch_key = WATCH_PREFIX + tag
        with self._guard.watch((watch_key,)) as watch:
            value = await shared.generation(tag, self.baseline())
        if value is None:
            return cached[0] if cached is not None else self._local_value(tag)
        if not watch.is_stale(watch_key):  # a bump arriving mid-read must win
            self._remember(tag, value, now)
        return value

    async def bump(self, tag: str) -> None:
        cached = self._cached.pop(tag, None)
        self._guard.invalidate((WATCH_PREFIX + tag,))
        value = await self._shared.bump_generation(tag, self.baseline())
        if value is None:
            # Not shared (no shared tier, or it failed and bumps it on recovery): keys built
            # from now on must differ here too.
            previous = cached[0] if cached is not None else 0
            self._local[tag] = max(self._local_value(tag), previous) + 1
            return
        self._remember(tag, value, self._clock())

    def forget(self, tag: str) -> None:
        """Another instance bumped `tag`: re-read it from the shared tier next time."""
        self._cached.pop(tag, None)
        self._guard.invalidate((WATCH_PREFIX + tag,))

    def clear(self) -> None:
        self._cached.clear()

    def _remember(self, tag: str, value: int, now: float) -> None:
        life = min(self._ttl, self._degraded_ttl) if self._shared.deaf else self._ttl
        self._cached[tag] = (value, now + life)

    def _local_value(self, tag: str) -> int:
        value = self._local.get(tag)
        if value is None:
            value = self._local[tag] = self.baseline()
        return value

"""Invalidation: what a write does to every tier on every instance.

`Invalidator` is the cache's write side: `delete`, `invalidate_pattern` and generation bumps
drop tier-1 copies (and in-flight loads) here, then ask the shared tier to delete its copies
and tell the other instances (`SharedTier.invalidate_*`); messages from the other instances
come back through `apply`/`flush`. With no shared tier (embedded mode) only the local half
runs, through the same calls.

The message format: one channel, `{prefix}invalidate`. A message is a small JSON object naming
its sender (so an instance skips its own messages, which it has already applied) and one of:
keys (batched, up to MAX_KEYS_PER_MESSAGE per message), glob patterns, generation tags, or a
full flush. `PendingInvalidations` keeps what could not be delivered, for a replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .flight import SingleFlight, StaleGuard
    from .generations import Generations
    from .memory import MemoryTier
    from .shared import SharedTier

from .messages import MAX_KEYS_PER_MESSAGE, Invalidation


def key_messages(sender: str, keys: Sequence[str]) -> list[bytes]:
    return [
        Invalidation(sender, keys=tuple(keys[start : start + MAX_KEYS_PER_MESSAGE])).encode()
        for start in range(0, len(keys), MAX_KEYS_PER_MESSAGE)
    ]


class PendingInvalidations:
    """Invalidations that could not reach Redis, to replay when it is back.

    Without this, a write during an outage would leave its old value in Redis (and in other
    instances' tier 1) until the TTL. Bounded: past `limit` keys we stop remembering them one
    by one and replay a flush of the whole prefix instead, which is slower but still correct.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.keys: set[str] = set()
        self.patterns: set[str] = set()
        self.tags: set[str] = set()
        self.overflow = False

    def __bool__(self) -> bool:
        return self.overflow or bool(self.keys or self.patterns or self.tags)

    def __len__(self) -> int:
        return len(self.keys) + len(self.patterns) + len(self.tags)

    def _check(self) -> None:
        if len(self) > self.limit:
            self.overflow = True
            self.keys.clear()
            self.patterns.clear()

    def add_keys(self, keys: Iterable[str]) -> None:
        if not self.overflow:
            self.keys.update(keys)
            self._check()

    def add_pattern(self, pattern: str) -> None:
        if not self.overflow:
            self.patterns.add(pattern)
            self._check()

    def add_tag(self, tag: str) -> None:
        self.tags.add(tag)  # tags are a small fixed set, and a flush does not bump counters

    def take(self) -> PendingInvalidations:
        taken = PendingInvalidations(self.limit)
        taken.keys, taken.patterns, taken.tags, taken.overflow = (
            self.keys,
            self.patterns,
            self.tags,
            self.overflow,
        )
        self.keys, self.patterns, self.tags, self.overflow = set(), set(), set(), False
        return taken

    def merge(self, other: PendingInvalidations) -> None:
        self.overflow = self.overflow or other.overflow
        self.tags |= other.tags
        if not self.overflow:
            self.keys |= other.keys
            self.patterns |= other.patterns
        self._check()


class Invalidator:
    """Drops invalidated entries from tier 1 and hands the rest to the shared tier."""

    def __init__(
        self,
        *,
        shared: SharedTier,
        memory: MemoryTier,
        guard: StaleGuard,
        flights: SingleFlight,
        generations: Generations,
    ) -> None:
        self._shared = shared
        self._memory = memory
        self._guard = guard
        self._flights = flights
        self._generations = generations

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete keys from every tier on every instance. Never raises; if the shared tier is
        unreachable the deletion is remembered and replayed when it comes back."""
        if not keys:
            return
        unique = list(dict.fromkeys(keys))
        self._drop_keys(unique)
        await self._shared.invalidate_keys(unique)

    async def invalidate_pattern(self, pattern: str) -> int:
        """Delete every key matching a glob on every instance; the number of tier-2 values
        removed (tier-1 entries removed when there is no shared tier or it is unreachable)."""
        local = self._drop_matching(pattern)
        removed = await self._shared.invalidate_pattern(pattern)
        return local if removed is None else removed

    async def bump_generation(self, tag: str) -> None:
        await self._generations.bump(tag)

    # -- TierOne: what other instances' messages do here ---------------------------------------

    def apply(self, message: Invalidation) -> None:
        """An invalidation from another instance: drop what it names from tier 1."""
        if message.flush:
            self.flush()
            return
        if message.keys:
            self._drop_keys(message.keys)
        for pattern in message.patterns:
            self._drop_matching(pattern)
        for tag in message.tags:
            self._generations.forget(tag)

    def flush(self) -> None:
        self._memory.clear()
        self._guard.invalidate_all()
        self._flights.forget_all()
        self._generations.clear()

    def _drop_keys(self, keys: Sequence[str]) -> None:
        self._memory.delete(keys)
        self._guard.invalidate(keys)
        self._flights.forget(keys)

    def _drop_matching(self, pattern: str) -> int:
        removed = self._memory.delete_matching(pattern)
        self._guard.invalidate_matching(pattern)
        self._flights.forget_matching(pattern)
        return removed

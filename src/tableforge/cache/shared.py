"""The shared (second) tier as the tiered cache sees it, and the embedded mode's absent one.

`Cache` talks to tier 2 only through `SharedTier`, whether it is Redis (`redis_shared.py`,
scale-out) or `NoSharedTier` (embedded: one process, nothing to share). The absent tier
answers every call the way a Redis tier that is down would for reads (not `readable`: look
nothing up, store nothing, take no lock), but reports itself healthy, never deaf, and
invalidation calls "delivered to nobody": nothing is remembered for a replay and no message
is counted. So the read path and invalidation keep one code path for both modes.

`tiered.build_shared_tier` is the one place that chooses, from the configured URL; the Redis
implementation is imported only when a Redis URL is set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .entry import Entry

if TYPE_CHECKING:
    from .messages import Invalidation


class TierOne(Protocol):
    """What the shared tier's invalidation channel does to this instance's tier 1."""

    def apply(self, message: Invalidation) -> None:
        """Another instance invalidated something: drop it here."""

    def flush(self) -> None:
        """Invalidations may have been missed: drop everything."""


class SharedTier(Protocol):
    """Tier 2: values shared by all instances, fill leases, generations, and invalidation
    delivery to the other instances (with replay of what could not be delivered)."""

    @property
    def mode(self) -> str:
        """`memory` or `redis`: the cache's mode in stats."""

    @property
    def healthy(self) -> bool:
        """Usable and hearing other instances' invalidations (absent: always)."""

    @property
    def readable(self) -> bool:
        """Worth a lookup, fill or lock right now (absent or down: no)."""

    @property
    def deaf(self) -> bool:
        """True while invalidations from other instances may be missed."""

    async def start(self, local: TierOne) -> None:
        """Connect and subscribe; never raises for an unreachable backend."""

    async def close(self) -> None: ...

    # -- read path: a miss/no-op (None, {}, False) whenever the tier cannot answer -------------

    async def get(self, key: str) -> Entry | None: ...

    async def mget(self, keys: Sequence[str]) -> dict[str, Entry]: ...

    async def set(self, key: str, entry: Entry, ttl: float) -> bool: ...

    async def mset(self, items: Sequence[tuple[str, Entry, float]]) -> bool: ...

    async def unset(self, key: str) -> None:
        """Remove one value (and its lease) without telling anyone: undoes our own racing SET."""

    async def acquire_lock(self, key: str, ttl: float) -> str | None: ...

    async def release_lock(self, key: str, token: str) -> None: ...

    async def set_if_locked(self, key: str, token: str, entry: Entry, ttl: float) -> bool: ...

    # -- invalidation: delete here and tell every other instance ------------------------------

    async def invalidate_keys(self, keys: Sequence[str]) -> None:
        """Delete the keys and announce it; what fails is replayed when the tier is back."""

    async def invalidate_pattern(self, pattern: str) -> int | None:
        """Delete what matches (SCAN) and announce it. The number of values removed, or None
        when unknown (no shared tier, or it failed: then it is replayed later)."""

    async def generation(self, tag: str, baseline: int) -> int | None:
        """The shared counter for `tag` (created at `baseline`), or None if there is none."""

    async def bump_generation(self, tag: str, baseline: int) -> int | None:
        """Increment and announce; None if not shared now (replayed later if it failed)."""

    # -- introspection ------------------------------------------------------------------------

    def stats(self, hits: int) -> dict[str, Any] | None:
        """The `redis` section of the cache's stats (`hits`: lookups tier 2 answered)."""

    def invalidation_stats(self) -> dict[str, int]:
        """Messages sent and received, and tier-1 flushes after missed messages."""

    async def info(self) -> dict[str, Any]:
        """Backend memory and key count for the admin page."""


class NoSharedTier:
    """Embedded mode: there is no second tier and no other instance to tell."""

    mode = "memory"
    healthy = True
    readable = False
    deaf = False

    async def start(self, local: TierOne) -> None:
        return None

    async def close(self) -> None:
        return None

    async def get(self, key: str) -> Entry | None:
        return None

    async def mget(self, keys: Sequence[str]) -> dict[str, Entry]:
        return {}

    async def set(self, key: str, entry: Entry, ttl: float) -> bool:
        return False

    async def mset(self, items: Sequence[tuple[str, Entry, float]]) -> bool:
        return False

    async def unset(self, key: str) -> None:
        return None

    async def acquire_lock(self, key: str, ttl: float) -> str | None:
        return None

    async def release_lock(self, key: str, token: str) -> None:
        return None

    async def set_if_locked(self, key: str, token: str, entry: Entry, ttl: float) -> bool:
        return False

    async def invalidate_keys(self, keys: Sequence[str]) -> None:
        return None

    async def invalidate_pattern(self, pattern: str) -> int | None:
        return None

    async def generation(self, tag: str, baseline: int) -> int | None:
        return None

    async def bump_generation(self, tag: str, baseline: int) -> int | None:
        return None

    def stats(self, hits: int) -> dict[str, Any] | None:
        return None

    def invalidation_stats(self) -> dict[str, int]:
        return {"sent": 0, "received": 0, "local_flushes": 0}

    async def info(self) -> dict[str, Any]:
        return {"enabled": False, "healthy": True}


# A class attribute satisfies a read-only protocol property; this line lets mypy check that.
_check: Callable[[], SharedTier] = NoSharedTier

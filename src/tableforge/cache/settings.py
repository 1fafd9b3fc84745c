"""The cache's knobs in one frozen object, built from `tableforge.config.Settings` in one place.

Most knobs are not user settings (yet): each default below says why it is what it is, so the
classes that take a `CacheSettings` need no long keyword lists of their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from .codec import Serialization
from .memory import Eviction

if TYPE_CHECKING:
    from tableforge.config import Settings

DEFAULT_PREFIX: Final = "tableforge:cache:"

# Per-kind TTLs (DESIGN.md, Caching). `kind` is also the metrics label: keep it a small fixed set.
KIND_TTLS: Final[Mapping[str, float]] = {
    "session": 3600.0,
    "room": 3600.0,
    "asset": 3600.0,
    "system": 7200.0,
    "query": 180.0,
}


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """The Redis tier's connection knobs.

    - `max_connections` (32): concurrent calls; more wait up to `pool_timeout` (1 s) and are then
      shed as misses/no-ops, so a saturated Redis slows nothing down by more than that.
    - `socket_timeout`/`connect_timeout` (1 s): a call that takes longer marks Redis down.
    - `health_check_interval` (15 s): redis-py pings a connection idle for longer before use.
    - `probe_max_delay` (5 s): the cap of the reconnect probe's exponential backoff.
    """

    max_connections: int = 32
    socket_timeout: float = 1.0
    connect_timeout: float = 1.0
    pool_timeout: float = 1.0
    health_check_interval: int = 15
    probe_max_delay: float = 5.0


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """Everything a `Cache` and its tiers are configured with (see the module docstring).

    - `redis_url`: None for embedded mode (no shared tier); else the shared tier's Redis.
    - `kind_ttls`: TTL per kind when a call gives none (`default_ttl` otherwise);
      `negative_ttl` (30 s) caps "missing" markers so a row created elsewhere shows up soon
      even without an invalidation.
    - `lock_ttl` (10 s) bounds how long a crashed filler blocks a key; a load slower than it
      is still returned and kept in tier 1, but not stored in tier 2 (its lease expired).
    - `lock_wait` (2 s): how long other instances wait for the filler before loading anyway.
    - `early_refresh_beta`/`early_refresh_min_delta`: XFetch's β and a floor on the measured
      load time (50 ms) so fast loaders still refresh a little ahead; β=0 disables it.
      `max_refreshes` bounds the background refreshes running at once.
    - `degraded_local_ttl` (5 s): tier-1 lifetime while the invalidation subscription is down.
    - `generation_ttl` (60 s): how long a generation value is trusted without a message.
    - `max_pending_invalidations`: invalidations kept for replay after an outage.
    - `subscribe_wait` (2 s): how long start-up waits for the invalidation subscription.
    """

    max_size: int = 10_000
    default_ttl: float = 300.0
    eviction: Eviction = "lru"
    redis_url: str | None = None
    instance_id: str | None = None
    serialization: Serialization = "msgpack"
    compression: bool = True
    prefix: str = DEFAULT_PREFIX
    kind_ttls: Mapping[str, float] = field(default_factory=dict)
    negative_ttl: float = 30.0
    lock_ttl: float = 10.0
    lock_wait: float = 2.0
    early_refresh_beta: float = 1.0
    early_refresh_min_delta: float = 0.05
    max_refreshes: int = 256
    degraded_local_ttl: float = 5.0
    generation_ttl: float = 60.0
    max_pending_invalidations: int = 10_000
    subscribe_wait: float = 2.0
    redis: RedisOptions = field(default_factory=RedisOptions)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CacheSettings:
        """The cache's settings for the app's settings; `overrides` name fields of this class
        (e.g. `prefix` for a Redis namespace, or knobs that are not app settings)."""
        built = cls(
            max_size=settings.cache_max_size,
            default_ttl=settings.cache_default_ttl,
            eviction=settings.cache_eviction,
            redis_url=settings.redis_url,
            instance_id=settings.instance_id,
            serialization=settings.cache_serialization,
            compression=settings.cache_compression,
            kind_ttls=KIND_TTLS,
        )
        return dataclasses.replace(built, **overrides) if overrides else built

    def ttl_cap(self) -> float:
        """The longest TTL a kind can get without an explicit one (bounds tier 1's TTL policy)."""
        return max([self.default_ttl, *self.kind_ttls.values()])

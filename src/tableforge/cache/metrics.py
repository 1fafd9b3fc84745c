"""Prometheus metrics for the cache, defined once per process on the default registry.

Labels are bounded: `tier` is memory|redis, `op` and `type` are fixed sets named in this
package, and `kind` is a small fixed set chosen by the app (session, room, asset, ...).
`kind_label` enforces that bound at runtime, so a caller passing an id by mistake costs
one "other" series rather than a series per id.
Gauges declare a multiprocess mode so `prometheus_client`'s multiprocess collector can sum
them across worker processes.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

MAX_KINDS: Final = 32
MAX_KIND_LENGTH: Final = 40
OTHER_KIND: Final = "other"
_kinds: set[str] = set()


def kind_label(kind: str) -> str:
    """The label value for `kind`: itself while fewer than MAX_KINDS have been seen, else "other"."""
    if kind in _kinds:
        return kind
    if len(_kinds) < MAX_KINDS and len(kind) <= MAX_KIND_LENGTH:
        _kinds.add(kind)
        return kind
    return OTHER_KIND


HITS = Counter("tableforge_cache_hits_total", "Lookups answered by a cache tier.", ["tier", "kind"])
MISSES = Counter("tableforge_cache_misses_total", "Lookups a cache tier could not answer.", ["tier", "kind"])
COALESCED = Counter(
    "tableforge_cache_coalesced_total",
    "Callers that shared another caller's in-flight load instead of starting their own.",
    ["kind"],
)
LOAD_SECONDS = Histogram(
    "tableforge_cache_load_seconds",
    "Time spent in loaders (the database) after a miss.",
    ["kind"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LOOKUP_SECONDS = Histogram(
    "tableforge_cache_lookup_seconds",
    "Time the cache tiers take to answer a lookup, loader excluded: result=memory or redis (the tier "
    "that hit), or miss (the time spent learning that no tier holds the key).",
    ["result"],
    buckets=(0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
             0.1, 0.25, 1.0),
)
# Bound once: the memory-hit path is a few microseconds, and a labels() lookup would double it.
LOOKUP_MEMORY = LOOKUP_SECONDS.labels(result="memory")
LOOKUP_REDIS = LOOKUP_SECONDS.labels(result="redis")
LOOKUP_MISS = LOOKUP_SECONDS.labels(result="miss")
LOAD_ERRORS = Counter("tableforge_cache_load_errors_total", "Loaders that raised.", ["kind"])
EARLY_REFRESHES = Counter(
    "tableforge_cache_early_refreshes_total", "Background refreshes of hot keys before expiry.", ["kind"]
)
EVICTIONS = Counter(
    "tableforge_cache_evictions_total",
    "Entries dropped from the memory tier: reason=size (policy eviction) or expired.",
    ["tier", "reason"],
)
ENTRIES = Gauge("tableforge_cache_entries", "Entries held by the memory tier.", ["tier"], multiprocess_mode="livesum")
REDIS_ERRORS = Counter("tableforge_cache_redis_errors_total", "Redis calls that failed, by operation.", ["op"])
REDIS_HEALTHY = Gauge(
    "tableforge_cache_redis_healthy", "1 while the Redis tier is usable.", multiprocess_mode="livemin"
)
DECODE_ERRORS = Counter(
    "tableforge_cache_decode_errors_total", "Tier-2 values that could not be decoded (served as misses)."
)
STALE_DISCARDS = Counter(
    "tableforge_cache_stale_discards_total",
    "Loaded values not stored because their key was invalidated while they were loading.",
)
LOCK_WAITS = Counter(
    "tableforge_cache_lock_waits_total",
    "Loads that found another instance holding the key's lock: outcome=filled|acquired|timeout.",
    ["outcome"],
)
INVALIDATIONS_SENT = Counter("tableforge_cache_invalidations_sent_total", "Invalidation messages published.", ["type"])
INVALIDATIONS_RECEIVED = Counter(
    "tableforge_cache_invalidations_received_total",
    "Invalidation messages from other instances applied to tier 1.",
    ["type"],
)
LOCAL_FLUSHES = Counter(
    "tableforge_cache_local_flushes_total",
    "Tier-1 flushes because the invalidation subscription dropped or was re-established.",
)
EDGE_PURGES = Counter(
    "tableforge_cache_edge_purges_total",
    "Purge requests to the HTTP edge (Varnish/CDN): outcome=ok|failed; dropped counts keys lost to a full queue.",
    ["outcome"],
)

"""The shared tier on Redis (scale-out): `RedisTier` for the data, pub/sub for invalidations.

Writes invalidate: the keys (and their fill leases) are UNLINKed and the invalidation is
PUBLISHed on `{prefix}invalidate` in one pipelined round trip; every other instance's
`InvalidationListener` drops its tier-1 copies.

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

A Redis failure never fails a call: the tier degrades to misses/no-ops and recovers by itself;
invalidations it could not deliver are kept (bounded, `PendingInvalidations`) and replayed when
it is back, before reads resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from . import metrics
from .codec import Codec
from .entry import Entry
from .invalidation import Invalidation, PendingInvalidations, key_messages
from .listener import InvalidationListener
from .memory import Clock
from .redis_tier import RedisTier
from .settings import CacheSettings
from .shared import TierOne

log = structlog.get_logger("tableforge.cache")


class RedisShared:
    """`SharedTier` on Redis: data, leases and generations in `tier`, messages on its channel."""

    mode = "redis"

    def __init__(self, url: str, settings: CacheSettings, *, instance_id: str, clock: Clock) -> None:
        self.instance_id = instance_id
        self._clock = clock
        self._subscribe_wait = settings.subscribe_wait
        codec = Codec(settings.serialization, compression=settings.compression)
        self.tier = RedisTier(url, codec=codec, prefix=settings.prefix, options=settings.redis)
        self.tier.on_recover = self._replay_pending
        self._pending = PendingInvalidations(settings.max_pending_invalidations)
        # Created by `start`, which is given tier 1; until then this instance hears nothing (deaf).
        self._listener: InvalidationListener | None = None
        self._sent = 0
        self._started = False

    # -- lifecycle and health ------------------------------------------------------------------

    async def start(self, local: TierOne) -> None:
        if self._started:
            return
        self._started = True
        self._listener = InvalidationListener(
            self.tier, instance_id=self.instance_id, on_message=local.apply, on_reset=local.flush
        )
        up = await self.tier.start()
        # Wait for the subscription only if Redis answered, so a dead Redis does not slow boot.
        await self._listener.start(wait=self._subscribe_wait if up else 0.0)
        log.info("cache.started", instance=self.instance_id, redis=up, subscribed=self._listener.subscribed)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        await self.tier.close()

    @property
    def subscribed(self) -> bool:
        return self._listener is not None and self._listener.subscribed

    @property
    def healthy(self) -> bool:
        return self.tier.healthy and self.subscribed

    @property
    def readable(self) -> bool:
        return self.tier.healthy

    @property
    def deaf(self) -> bool:
        return not self.subscribed

    # -- read path -----------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        return await self.tier.get(key)

    async def mget(self, keys: Sequence[str]) -> dict[str, Entry]:
        return await self.tier.mget(keys)

    async def set(self, key: str, entry: Entry, ttl: float) -> bool:
        return await self.tier.set(key, entry, ttl)

    async def mset(self, items: Sequence[tuple[str, Entry, float]]) -> bool:
        return await self.tier.mset(items)

    async def unset(self, key: str) -> None:
        await self.tier.delete([key], ())

    async def acquire_lock(self, key: str, ttl: float) -> str | None:
        return await self.tier.acquire_lock(key, ttl)

    async def release_lock(self, key: str, token: str) -> None:
        await self.tier.release_lock(key, token)

    async def set_if_locked(self, key: str, token: str, entry: Entry, ttl: float) -> bool:
        return await self.tier.set_if_locked(key, token, entry, ttl)

    # -- invalidation --------------------------------------------------------------------------

    async def invalidate_keys(self, keys: Sequence[str]) -> None:
        messages = key_messages(self.instance_id, keys)
        if await self.tier.delete(keys, messages):
            self._count_sent("keys", len(messages))
        else:
            self._pending.add_keys(keys)

    async def invalidate_pattern(self, pattern: str) -> int | None:
        removed = await self.tier.scan_unlink(pattern)
        message = Invalidation(self.instance_id, patterns=(pattern,)).encode()
        if removed is None or not await self.tier.publish([message]):
            self._pending.add_pattern(pattern)
            return removed
        self._count_sent("pattern")
        return removed

    async def generation(self, tag: str, baseline: int) -> int | None:
        return await self.tier.generation(tag, baseline)

    async def bump_generation(self, tag: str, baseline: int) -> int | None:
        value = await self.tier.bump_generation(tag, baseline, self._tag_message(tag))
        if value is None:
            self._pending.add_tag(tag)
        else:
            self._count_sent("generation")
        return value

    def _tag_message(self, tag: str) -> bytes:
        return Invalidation(self.instance_id, tags=(tag,)).encode()

    def _count_sent(self, kind: str, n: int = 1) -> None:
        self._sent += n
        metrics.INVALIDATIONS_SENT.labels(type=kind).inc(n)

    async def _replay_pending(self) -> bool:
        """Deliver the invalidations that failed while Redis was down (called while RECOVERING)."""
        tier = self.tier
        pending = self._pending.take()
        if not pending:
            return True
        ok = True
        if pending.overflow:
            ok = await tier.scan_unlink("*") is not None and await tier.publish(
                [Invalidation(self.instance_id, flush=True).encode()]
            )
            if ok:
                self._count_sent("flush")
        else:
            if pending.keys:
                keys = sorted(pending.keys)
                messages = key_messages(self.instance_id, keys)
                ok = await tier.delete(keys, messages)
                if ok:
                    self._count_sent("keys", len(messages))
            for pattern in sorted(pending.patterns):
                ok = ok and await tier.scan_unlink(pattern) is not None
                ok = ok and await tier.publish([Invalidation(self.instance_id, patterns=(pattern,)).encode()])
        baseline = int(self._clock() * 1000)  # as Generations.baseline: a fresh counter starts here
        for tag in sorted(pending.tags):
            ok = ok and await tier.bump_generation(tag, baseline, self._tag_message(tag)) is not None
        if not ok:
            self._pending.merge(pending)
        log.info("cache.pending_replayed", ok=ok, keys=len(pending.keys), overflow=pending.overflow)
        return ok

    # -- introspection -------------------------------------------------------------------------

    def stats(self, hits: int) -> dict[str, Any] | None:
        return {
            **self.tier.stats(),
            "subscribed": self.subscribed,
            "hits": hits,
            "pending_invalidations": len(self._pending),
            "pending_overflow": self._pending.overflow,
        }

    def invalidation_stats(self) -> dict[str, int]:
        listener = self._listener
        return {
            "sent": self._sent,
            "received": listener.received if listener is not None else 0,
            "local_flushes": listener.resets if listener is not None else 0,
        }

    async def info(self) -> dict[str, Any]:
        info = await self.tier.info()
        return {
            "enabled": True,
            "healthy": self.healthy,
            "state": self.tier.state.value,
            "subscribed": self.subscribed,
            "prefix": self.tier.prefix,
            "used_memory": info.get("used_memory"),
            "used_memory_human": info.get("used_memory_human"),
            "maxmemory": info.get("maxmemory"),
            "maxmemory_policy": info.get("maxmemory_policy"),
            "keys": info.get("keys"),
        }

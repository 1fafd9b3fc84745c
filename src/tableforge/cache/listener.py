"""Cross-instance invalidation of tier 1: the subscriber side of the Redis channel.

Pub/sub is at-most-once: a subscriber that is disconnected misses messages for good. So
whenever the subscription drops, and again whenever it is (re)established, the listener
asks for a full tier-1 flush: anything cached while we might have been deaf is suspect.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

import structlog
from redis.exceptions import RedisError

from tableforge import tasks

from . import metrics
from .messages import Invalidation
from .redis_tier import RedisTier

log = structlog.get_logger("tableforge.cache")


class InvalidationListener:
    """Keeps one subscription to the invalidation channel alive and applies what arrives."""

    def __init__(
        self,
        redis: RedisTier,
        *,
        instance_id: str,
        on_message: Callable[[Invalidation], None],
        on_reset: Callable[[], None],
        max_backoff: float = 5.0,
    ) -> None:
        self._redis = redis
        self._instance_id = instance_id
        self._on_message = on_message
        self._on_reset = on_reset
        self._max_backoff = max_backoff
        self._task: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        self.received = 0
        self.resets = 0
        self._failures = 0

    @property
    def subscribed(self) -> bool:
        return self._up.is_set()

    async def start(self, wait: float) -> bool:
        """Start listening; wait up to `wait` seconds for the first subscription to be confirmed."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), wait)
        return self.subscribed

    async def close(self) -> None:
        if self._task is not None:
            await tasks.stop([self._task])
            self._task = None
        self._up.clear()

    def _reset(self, reason: str) -> None:
        self.resets += 1
        metrics.LOCAL_FLUSHES.inc()
        log.info("cache.invalidation.reset", reason=reason)
        self._on_reset()

    async def _run(self) -> None:
        delay = 0.05
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._redis.channel)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # Also sent after redis-py silently reconnects and resubscribes: the gap
                        # before it may have swallowed messages.
                        self._up.set()
                        self._failures = 0
                        delay = 0.05
                        self._reset("subscribed")
                    elif message["type"] == "message":
                        self._handle(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                # Loud once per outage, quiet while retrying.
                (log.debug if self._failures else log.warning)("cache.invalidation.disconnected", error=repr(exc))
                self._failures += 1
            except Exception:
                log.exception("cache.invalidation.listener_failed")
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            if self._up.is_set():
                self._up.clear()
                self._reset("disconnected")
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._max_backoff)

    def _handle(self, data: bytes) -> None:
        message = Invalidation.decode(data)
        if message is None:
            log.warning("cache.invalidation.bad_message", size=len(data))
            return
        if message.sender == self._instance_id:
            return
        self.received += 1
        metrics.INVALIDATIONS_RECEIVED.labels(type=message.type).inc()
        try:
            self._on_message(message)
        except Exception:
            log.exception("cache.invalidation.apply_failed")

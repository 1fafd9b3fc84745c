"""Cross-instance invalidation of tier 1 over Redis pub/sub.

One channel, `{prefix}invalidate`. A message is a small JSON object naming its sender (so an
instance skips its own messages, which it has already applied) and one of: keys (batched,
up to MAX_KEYS_PER_MESSAGE per message), glob patterns, generation tags, or a full flush.

Pub/sub is at-most-once: a subscriber that is disconnected misses messages for good. So
whenever the subscription drops, and again whenever it is (re)established, the listener
asks for a full tier-1 flush: anything cached while we might have been deaf is suspect.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
import structlog
from redis.exceptions import RedisError

from . import metrics
from .redis_tier import RedisTier

MAX_KEYS_PER_MESSAGE: Final = 500
log = structlog.get_logger("tableforge.cache")


@dataclass(frozen=True, slots=True)
class Invalidation:
    sender: str
    keys: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    flush: bool = False

    @property
    def type(self) -> str:
        """The metrics label: what this message invalidates."""
        if self.flush:
            return "flush"
        if self.patterns:
            return "pattern"
        if self.tags:
            return "generation"
        return "keys"

    def encode(self) -> bytes:
        body: dict[str, Any] = {"i": self.sender}
        if self.keys:
            body["k"] = self.keys
        if self.patterns:
            body["p"] = self.patterns
        if self.tags:
            body["g"] = self.tags
        if self.flush:
            body["f"] = True
        return orjson.dumps(body)

    @classmethod
    def decode(cls, data: bytes) -> Invalidation | None:
        """The message, or None if it is not one of ours (never raises on bad input)."""
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(body, dict) or not isinstance(body.get("i"), str):
            return None
        fields: dict[str, tuple[str, ...]] = {}
        for short, name in (("k", "keys"), ("p", "patterns"), ("g", "tags")):
            items = body.get(short, [])
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                return None
            fields[name] = tuple(items)
        return cls(body["i"], flush=body.get("f") is True, **fields)


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
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
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

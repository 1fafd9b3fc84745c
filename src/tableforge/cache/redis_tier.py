"""Tier 2: shared entries in Redis, and the cross-instance primitives built on it.

Key layout, all under one prefix (default `tableforge:cache:`):
    {prefix}k:{key}    encoded Entry envelope, with a PX expiry
    {prefix}l:{key}    the key's fill lock/lease (SET NX PX, random token)
    {prefix}g:{tag}    generation counter
and the invalidation channel `{prefix}invalidate`. Data and lock keys differ by one letter so
one `SCAN MATCH {prefix}[kl]:{glob}` finds both.

The lock doubles as a lease (memcached's leases, Nishtala et al. 2013): the filler stores its
value only while it still holds the lock, and a delete removes the lock together with the
value. So a load that read the database before a write cannot land in Redis after that
write's invalidation.

Redis errors never propagate. A connection-level failure marks the tier DOWN: every call then
returns its miss/no-op default at once (no timeouts on the request path) while one background
probe pings with capped exponential backoff. When a ping answers, the tier is RECOVERING:
only invalidation writes run, so `on_recover` can replay what failed during the outage before
reads and fills resume (UP).
"""

from __future__ import annotations

import asyncio
import enum
import random
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar, cast

import structlog
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tableforge import tasks
from tableforge.redis_client import TimedRedis

from . import metrics
from .codec import CacheDecodeError, Codec
from .entry import Entry
from .redis_scripts import GEN_BUMP, GEN_GET, RELEASE, SET_IF_LOCKED
from .settings import DEFAULT_PREFIX, RedisOptions

SCAN_COUNT: Final = 1000
UNLINK_BATCH: Final = 500

log = structlog.get_logger("tableforge.cache")
R = TypeVar("R")

_CONNECTION_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError)
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters, so a prefix matches only itself."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


class State(enum.Enum):
    DOWN = "down"
    RECOVERING = "recovering"
    UP = "up"


class RedisTier:
    """Tier 2 on redis.asyncio: encoded entries, fill locks, generations, pub/sub publishing."""

    def __init__(
        self,
        url: str,
        *,
        codec: Codec,
        prefix: str = DEFAULT_PREFIX,
        options: RedisOptions = RedisOptions(),
    ) -> None:
        self.codec = codec
        self.prefix = prefix
        self.channel = prefix + "invalidate"
        self._data_prefix = prefix + "k:"
        self._lock_prefix = prefix + "l:"
        self._gen_prefix = prefix + "g:"
        # At most `max_connections` calls at once, queued for at most `pool_timeout`. A semaphore
        # rather than BlockingConnectionPool: it costs nothing uncontended, where the blocking pool
        # adds ~20 µs to every call. The pool itself has room for the subscriber and the probe.
        self._slots = asyncio.Semaphore(options.max_connections)
        self._pool_timeout = options.pool_timeout
        self.saturated = 0
        pool = ConnectionPool.from_url(
            url,
            max_connections=options.max_connections + 2,
            socket_timeout=None,  # the client's limit, one per round trip (redis_client.py)
            socket_connect_timeout=options.connect_timeout,
            health_check_interval=options.health_check_interval,
            # One immediate retry replaces a pooled connection the server closed; anything
            # longer would hold a request hostage, and the probe handles real outages.
            retry=Retry(NoBackoff(), 1),
        )
        self.client: Redis = TimedRedis(connection_pool=pool, io_timeout=options.socket_timeout)
        self.client.auto_close_connection_pool = True  # as Redis.from_pool: closing the client closes the pool
        self._set_if_locked = self.client.register_script(SET_IF_LOCKED)
        self._release = self.client.register_script(RELEASE)
        self._gen_get = self.client.register_script(GEN_GET)
        self._gen_bump = self.client.register_script(GEN_BUMP)
        self._probe_max_delay = options.probe_max_delay
        self._probe_task: asyncio.Task[None] | None = None
        self._state = State.DOWN
        self._closed = False
        self.on_recover: Callable[[], Awaitable[bool]] | None = None
        self.errors = 0
        self.errors_by_op: dict[str, int] = {}
        self.decode_errors = 0
        self.encode_errors = 0
        self.skipped = 0
        self.outages = 0

    # -- health ------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def healthy(self) -> bool:
        return self._state is State.UP

    def _set_state(self, state: State) -> None:
        self._state = state
        metrics.REDIS_HEALTHY.set(1 if state is State.UP else 0)

    async def start(self) -> bool:
        """Ping once; if Redis is not there, start the background probe and carry on degraded."""
        try:
            await self.client.ping()
        except (*_CONNECTION_ERRORS, RedisError) as exc:
            log.warning("cache.redis.unavailable", error=repr(exc))
            self._mark_down("ping", exc)
            return False
        self._set_state(State.UP)
        return True

    async def close(self) -> None:
        self._closed = True
        await tasks.stop([self._probe_task])
        self._set_state(State.DOWN)
        await self.client.aclose()

    def _count_error(self, op: str) -> None:
        self.errors += 1
        self.errors_by_op[op] = self.errors_by_op.get(op, 0) + 1
        metrics.REDIS_ERRORS.labels(op=op).inc()

    def _mark_down(self, op: str, exc: BaseException) -> None:
        self._count_error(op)
        if self._state is not State.DOWN:
            self.outages += 1
            log.warning("cache.redis.down", op=op, error=repr(exc))
        self._set_state(State.DOWN)
        if not self._closed and (self._probe_task is None or self._probe_task.done()):
            self._probe_task = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        delay = 0.05
        while True:
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._probe_max_delay)
            try:
                await self.client.ping()
            except (*_CONNECTION_ERRORS, RedisError):
                continue
            self._set_state(State.RECOVERING)
            try:
                replayed = await self.on_recover() if self.on_recover is not None else True
            except Exception:
                log.exception("cache.redis.recover_hook_failed")
                replayed = False
            if replayed and self._state is State.RECOVERING:
                self._set_state(State.UP)
                log.info("cache.redis.up")
                return
            self._set_state(State.DOWN)

    async def _call(self, op: str, fn: Callable[[], Awaitable[R]], default: R, *, while_recovering: bool = False) -> R:
        state = self._state
        if state is not State.UP and not (while_recovering and state is State.RECOVERING):
            self.skipped += 1
            return default
        if self._slots.locked():
            try:
                async with asyncio.timeout(self._pool_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                # Saturated, not down: shed this call, keep the tier up.
                self.saturated += 1
                self._count_error("saturated")
                return default
        else:
            await self._slots.acquire()
        try:
            return await fn()
        except _CONNECTION_ERRORS as exc:
            self._mark_down(op, exc)
        except RedisError as exc:
            self._count_error(op)
            log.warning("cache.redis.error", op=op, error=repr(exc))
        finally:
            self._slots.release()
        return default

    # -- encoding ----------------------------------------------------------------------------

    def data_key(self, key: str) -> str:
        return self._data_prefix + key

    def lock_key(self, key: str) -> str:
        return self._lock_prefix + key

    def _encode(self, key: str, entry: Entry) -> bytes | None:
        try:
            return self.codec.encode([entry.value, entry.expires_at, entry.delta])
        except (TypeError, ValueError, OverflowError) as exc:
            # A programming error (a value that is not plain data); loud, but not the caller's failure.
            self.encode_errors += 1
            log.error("cache.encode_failed", key=key, error=repr(exc))
            return None

    def _decode(self, key: str, raw: bytes) -> Entry | None:
        try:
            envelope = self.codec.decode(raw)
            if not (isinstance(envelope, list) and len(envelope) == 3):
                raise CacheDecodeError("not an entry envelope")
            value, expires_at, delta = envelope
            if not (isinstance(expires_at, int | float) and isinstance(delta, int | float)):
                raise CacheDecodeError("bad entry envelope timing")
        except CacheDecodeError as exc:
            self.decode_errors += 1
            metrics.DECODE_ERRORS.inc()
            log.warning("cache.decode_failed", key=key, error=str(exc))
            return None
        return Entry(value, float(expires_at), float(delta))

    @staticmethod
    def _px(ttl: float) -> int:
        return max(1, int(ttl * 1000))

    # -- values ------------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        async def op() -> bytes | None:
            return cast(bytes | None, await self.client.get(self.data_key(key)))

        raw = await self._call("get", op, None)
        return None if raw is None else self._decode(key, raw)

    async def mget(self, keys: Sequence[str]) -> dict[str, Entry]:
        """One MGET; missing, undecodable and (on error) all keys are simply absent."""
        if not keys:
            return {}

        async def op() -> list[bytes | None]:
            return cast(list[bytes | None], await self.client.mget([self.data_key(k) for k in keys]))

        empty: list[bytes | None] = []
        raws = await self._call("mget", op, empty)
        found: dict[str, Entry] = {}
        for key, raw in zip(keys, raws, strict=False):
            if raw is not None and (entry := self._decode(key, raw)) is not None:
                found[key] = entry
        return found

    async def set(self, key: str, entry: Entry, ttl: float) -> bool:
        payload = self._encode(key, entry)
        if payload is None:
            return False

        async def op() -> bool:
            await self.client.set(self.data_key(key), payload, px=self._px(ttl))
            return True

        return await self._call("set", op, False)

    async def mset(self, items: Sequence[tuple[str, Entry, float]]) -> bool:
        """Many SET PX in one pipelined round trip (not a transaction: each key stands alone)."""
        encoded = [(k, p, self._px(ttl)) for k, e, ttl in items if (p := self._encode(k, e)) is not None]
        if not encoded:
            return not items

        async def op() -> bool:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, payload, px in encoded:
                    pipe.set(self.data_key(key), payload, px=px)
                await pipe.execute()
            return True

        return await self._call("mset", op, False)

    # -- locks (leases) ----------------------------------------------------------------------

    async def acquire_lock(self, key: str, ttl: float) -> str | None:
        """The lock's token if we got it; None if someone holds it or Redis is unusable."""
        token = secrets.token_hex(8)

        async def op() -> str | None:
            ok = await self.client.set(self.lock_key(key), token, nx=True, px=self._px(ttl))
            return token if ok else None

        return await self._call("lock", op, None)

    async def release_lock(self, key: str, token: str) -> None:
        async def op() -> None:
            await self._release(keys=[self.lock_key(key)], args=[token])

        await self._call("unlock", op, None)

    async def set_if_locked(self, key: str, token: str, entry: Entry, ttl: float) -> bool:
        """Store and release in one step, only while our lease is intact (not deleted, not expired)."""
        payload = self._encode(key, entry)
        if payload is None:
            await self.release_lock(key, token)
            return False

        async def op() -> bool:
            stored = await self._set_if_locked(
                keys=[self.data_key(key), self.lock_key(key)], args=[token, payload, self._px(ttl)]
            )
            return bool(stored)

        return await self._call("set", op, False)

    # -- invalidation ------------------------------------------------------------------------

    async def delete(self, keys: Sequence[str], messages: Sequence[bytes]) -> bool:
        """UNLINK values and their leases, then PUBLISH, in one pipelined round trip."""

        async def op() -> bool:
            async with self.client.pipeline(transaction=False) as pipe:
                for start in range(0, len(keys), UNLINK_BATCH):
                    batch = keys[start : start + UNLINK_BATCH]
                    pipe.unlink(*[self.data_key(k) for k in batch], *[self.lock_key(k) for k in batch])
                for message in messages:
                    pipe.publish(self.channel, message)
                await pipe.execute()
            return True

        return await self._call("delete", op, False, while_recovering=True)

    async def scan_unlink(self, pattern: str) -> int | None:
        """Delete values (and leases) whose key matches a Redis glob, page by page with SCAN.

        Returns how many values were removed, or None if Redis failed part-way.
        """
        match = glob_escape(self.prefix) + "[kl]:" + pattern
        data_prefix = self._data_prefix.encode()

        async def op() -> int:
            removed = 0
            async for batch in self._scan_batches(match):
                values = [k for k in batch if k.startswith(data_prefix)]
                leases = [k for k in batch if not k.startswith(data_prefix)]
                async with self.client.pipeline(transaction=False) as pipe:
                    if values:
                        pipe.unlink(*values)
                    if leases:
                        pipe.unlink(*leases)
                    results = await pipe.execute()
                if values:
                    removed += int(results[0])
            return removed

        return await self._call("scan", op, None, while_recovering=True)

    async def _scan_batches(self, match: str) -> AsyncIterator[list[bytes]]:
        cursor = 0
        while True:
            cursor, page = await self.client.scan(cursor=cursor, match=match, count=SCAN_COUNT)
            found = cast(list[bytes], page)
            for start in range(0, len(found), UNLINK_BATCH):
                yield found[start : start + UNLINK_BATCH]
            if cursor == 0:
                return

    async def publish(self, messages: Sequence[bytes]) -> bool:
        async def op() -> bool:
            async with self.client.pipeline(transaction=False) as pipe:
                for message in messages:
                    pipe.publish(self.channel, message)
                await pipe.execute()
            return True

        return await self._call("publish", op, False, while_recovering=True)

    def pubsub(self) -> PubSub:
        """A dedicated subscriber connection from the same pool."""
        return self.client.pubsub()

    # -- generations -------------------------------------------------------------------------

    async def generation(self, tag: str, baseline: int) -> int | None:
        async def op() -> int:
            return int(await self._gen_get(keys=[self._gen_prefix + tag], args=[baseline]))

        return await self._call("generation", op, None)

    async def bump_generation(self, tag: str, baseline: int, message: bytes) -> int | None:
        """INCR and PUBLISH atomically, so no instance sees the new number before the message."""

        async def op() -> int:
            return int(await self._gen_bump(keys=[self._gen_prefix + tag], args=[baseline, self.channel, message]))

        return await self._call("generation", op, None, while_recovering=True)

    # -- introspection -----------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        """Server memory and the number of keys under our prefix (counted with SCAN)."""

        async def op() -> dict[str, Any]:
            memory = await self.client.info("memory")
            count = 0
            async for batch in self._scan_batches(glob_escape(self.prefix) + "*"):
                count += len(batch)
            return {
                "used_memory": memory.get("used_memory"),
                "used_memory_human": memory.get("used_memory_human"),
                "maxmemory": memory.get("maxmemory"),
                "maxmemory_policy": memory.get("maxmemory_policy"),
                "keys": count,
            }

        return await self._call("info", op, {})

    def stats(self) -> dict[str, Any]:
        return {
            "state": self._state.value,
            "healthy": self.healthy,
            "errors": self.errors,
            "errors_by_op": dict(self.errors_by_op),
            "decode_errors": self.decode_errors,
            "encode_errors": self.encode_errors,
            "skipped_while_down": self.skipped,
            "saturated": self.saturated,
            "outages": self.outages,
        }

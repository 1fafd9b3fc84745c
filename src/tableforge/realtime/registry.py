"""Instance registry: which instances are alive, and what each one carries.

Each instance writes `{prefix}instance:{id}` (JSON: connections, rooms, memory, uptime, ...)
with a 30 s expiry every 10 s, and scores itself in the zset `{prefix}instances` by Redis
server time. Why both: the key expires by itself when an instance dies (kill -9 included), so
"is it alive?" is one EXISTS, also from inside Lua (presence uses that); the zset lists the
instances without KEYS or a SCAN of the whole keyspace, and each heartbeat trims the members
that stopped beating. Scores use Redis's clock, not ours, so clock skew between machines
cannot make an instance look dead.

Heartbeat hooks run after every beat with `revived=True` when the key had vanished (first
beat, a Redis restart, or a stall longer than the expiry): whatever this instance stored
under its name may have been dropped by others meanwhile and must be written again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import psutil
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tableforge import tasks
from tableforge.observability.logging import get_logger

log = get_logger(__name__)

DEFAULT_PREFIX: Final = "tableforge:"
MAX_INSTANCES: Final = 1000

StatsProvider = Callable[[], Mapping[str, Any]]
HeartbeatHook = Callable[[bool], Awaitable[Any]]

HEARTBEATS = Counter("tableforge_registry_heartbeats_total", "Instance heartbeats, by outcome", ["outcome"])
LIVE_INSTANCES = Gauge("tableforge_registry_live_instances", "Live instances seen at the last listing",
                       multiprocess_mode="max")

# KEYS[1] instance key, KEYS[2] index zset; ARGV[1] payload, ARGV[2] ttl ms, ARGV[3] instance id.
# Returns 1 if the key was still there (we were continuously alive), 0 if it had vanished.
_HEARTBEAT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
return existed
"""


def instance_key(prefix: str, instance_id: str) -> str:
    """The key whose existence means "this instance is alive" (presence checks it too)."""
    return f"{prefix}instance:{instance_id}"


def index_key(prefix: str) -> str:
    return f"{prefix}instances"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class InstanceRegistry:
    """Heartbeats this instance and lists the live ones. Redis errors are logged, never raised."""

    def __init__(
        self,
        redis: Redis,
        instance_id: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        interval: float = 10.0,
        ttl: float = 30.0,
        stats: StatsProvider | None = None,
        started_at: float | None = None,
        hook_timeout: float | None = None,
    ) -> None:
        if ttl <= interval:
            raise ValueError("the expiry must be longer than the heartbeat interval")
        self._redis = redis
        self.instance_id = instance_id
        self.prefix = prefix
        self.interval = interval
        self.ttl = ttl
        self._stats = stats
        self.started_at = started_at if started_at is not None else time.time()
        self._hook_timeout = hook_timeout if hook_timeout is not None else interval
        self._hooks: list[HeartbeatHook] = []
        self._more_stats: list[StatsProvider] = []
        self._script = redis.register_script(_HEARTBEAT)
        self._process = psutil.Process(os.getpid())
        self._host = socket.gethostname()
        self._key = instance_key(prefix, instance_id)
        self._index = index_key(prefix)
        self._task: asyncio.Task[None] | None = None
        self.healthy = False
        self.last_ok: float | None = None

    @property
    def key(self) -> str:
        return self._key

    def add_hook(self, hook: HeartbeatHook) -> None:
        """Run `hook(revived)` after every heartbeat (e.g. presence upkeep), in the heartbeat task."""
        self._hooks.append(hook)

    def add_stats(self, provider: StatsProvider) -> None:
        """More fields for every heartbeat (e.g. the drain state), after the main provider's."""
        self._more_stats.append(provider)

    def payload(self) -> dict[str, Any]:
        now = time.time()
        body: dict[str, Any] = {
            "instance_id": self.instance_id,
            "host": self._host,
            "pid": self._process.pid,
            "connections": 0,
            "rooms": 0,
        }
        for provider in ([self._stats] if self._stats is not None else []) + self._more_stats:
            try:
                body.update(provider())
            except Exception:
                log.exception("registry.stats_failed")
        try:
            body["memory_rss"] = self._process.memory_info().rss
        except psutil.Error:
            body["memory_rss"] = None
        body.update(
            uptime=round(now - self.started_at, 3),
            started_at=_iso(self.started_at),
            last_heartbeat=_iso(now),
            last_heartbeat_ts=now,
            interval=self.interval,
            ttl=self.ttl,
        )
        return body

    async def heartbeat(self) -> bool | None:
        """Write our key and index entry. True if the key had vanished (see the module doc);
        None if Redis could not be reached."""
        try:
            existed = await self._script(keys=[self._key, self._index],
                                         args=[orjson.dumps(self.payload()), int(self.ttl * 1000), self.instance_id])
        except (RedisError, OSError) as exc:
            HEARTBEATS.labels("error").inc()
            if self.healthy:
                log.warning("registry.heartbeat_failed", error=repr(exc), instance_id=self.instance_id)
            self.healthy = False
            return None
        HEARTBEATS.labels("ok").inc()
        self.healthy = True
        self.last_ok = time.time()
        return not existed

    async def start(self) -> None:
        """Beat once now (so others see us before we serve), then every `interval`."""
        if self._task is not None:
            return
        await self._beat()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"registry-{self.instance_id}")

    async def close(self) -> None:
        """Stop beating and remove ourselves at once, rather than waiting for the expiry."""
        if self._task is not None:
            await tasks.stop([self._task])
            self._task = None
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(2.0):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.delete(self._key)
                    pipe.zrem(self._index, self.instance_id)
                    await pipe.execute()
        self.healthy = False

    async def _run(self) -> None:
        missed = False
        while True:
            # A failed beat is retried sooner, so a short Redis blip does not cost the expiry.
            await asyncio.sleep(self.interval / 3 if missed else self.interval)
            missed = not await self._beat()

    async def _beat(self) -> bool:
        revived = await self.heartbeat()
        if revived is None:
            return False
        for hook in list(self._hooks):
            try:
                async with asyncio.timeout(self._hook_timeout):
                    await hook(revived)
            except Exception:
                log.exception("registry.hook_failed")
        return True

    async def live_instances(self) -> list[dict[str, Any]]:
        """Every live instance's last heartbeat payload, ordered by instance id."""
        ids = [i.decode() if isinstance(i, bytes) else str(i)
               for i in await self._redis.zrange(self._index, 0, MAX_INSTANCES - 1)]
        if not ids:
            LIVE_INSTANCES.set(0)
            return []
        raw = await self._redis.mget([instance_key(self.prefix, i) for i in ids])
        instances: list[dict[str, Any]] = []
        for value in raw:
            if value is None:
                continue  # expired since its last beat: dead
            try:
                instances.append(orjson.loads(value))
            except orjson.JSONDecodeError:
                continue
        instances.sort(key=lambda body: str(body.get("instance_id", "")))
        LIVE_INSTANCES.set(len(instances))
        return instances

    async def is_alive(self, instance_id: str) -> bool:
        return bool(await self._redis.exists(instance_key(self.prefix, instance_id)))

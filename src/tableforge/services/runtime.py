"""The running app's parts, built once at start-up from the settings (the composition root).

The mode is decided here and nowhere else: which broker, which cache tiers, which database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from tableforge.cache import Cache, build_cache
from tableforge.config import Settings
from tableforge.db.engine import Database
from tableforge.realtime.broker import Broker, MemoryBroker
from tableforge.realtime.hub import Hub
from tableforge.realtime.presence import MemoryPresence, Presence
from tableforge.realtime.redis_broker import RedisBroker
from tableforge.realtime.redis_presence import RedisPresence
from tableforge.realtime.registry import InstanceRegistry
from tableforge.realtime.room_tokens import RoomTokens
from tableforge.services import events


@dataclass
class Runtime:
    settings: Settings
    db: Database
    broker: Broker
    hub: Hub
    presence: Presence
    cache: Cache
    # Token owners of the local rooms, fed by the hub: checks preview moves without a query per frame.
    room_tokens: RoomTokens = field(default_factory=RoomTokens)
    registry: InstanceRegistry | None = None  # scale-out only
    redis: Redis | None = None  # scale-out only: presence and registry
    started_at: float = 0.0
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    # Admin stats requests waiting for other instances' replies: request id -> replies.
    stats_waiters: dict[str, asyncio.Queue[dict[str, Any]]] = field(default_factory=dict)

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.hub.close()
        await self.broker.close()
        await self.cache.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()


def build_runtime(settings: Settings) -> Runtime:
    db = Database(settings)
    broker: Broker
    presence: Presence
    redis: Redis | None = None
    if settings.redis_url is not None:
        prefix = settings.redis_prefix
        broker = RedisBroker(settings.redis_url, settings.instance_id, prefix=prefix)
        # Blocking pool: a burst (1,000 sockets closing at shutdown) waits for a connection
        # instead of failing with MaxConnectionsError.
        redis = Redis(connection_pool=BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=32, timeout=5.0, socket_timeout=2.0, socket_connect_timeout=2.0))
        presence = RedisPresence(redis, settings.instance_id, user_ttl=settings.instance_ttl_seconds,
                                 prefix=prefix)
    else:
        broker = MemoryBroker()
        presence = MemoryPresence(settings.instance_id)

    async def load_version(room_id: str) -> int:
        async with db.read() as conn:
            return await events.current_version(conn, room_id)

    async def load_history(room_id: str, after: int, upto: int) -> list[tuple[int, str]]:
        async with db.read() as conn:
            return await events.history(conn, room_id, after, upto)

    hub = Hub(broker, settings.instance_id, version_loader=load_version, history_loader=load_history)
    room_tokens = RoomTokens()
    hub.add_observer(room_tokens)
    registry = None
    if redis is not None:
        registry = InstanceRegistry(redis, settings.instance_id, stats=lambda: local_stats(hub, broker),
                                    interval=settings.instance_heartbeat_seconds, ttl=settings.instance_ttl_seconds,
                                    prefix=prefix)
    return Runtime(settings=settings, db=db, broker=broker, hub=hub, presence=presence, cache=_cache(settings),
                   room_tokens=room_tokens, registry=registry, redis=redis)


def _cache(settings: Settings) -> Cache:
    if settings.redis_namespace:
        return build_cache(settings, prefix=f"{settings.redis_prefix}cache:")
    return build_cache(settings)


def local_stats(hub: Hub, broker: Broker) -> dict[str, Any]:
    """What this instance reports in its heartbeat and to `GET /api/admin/stats`."""
    stats: dict[str, Any] = {"connections": len(hub.connections), "rooms": len(hub.rooms)}
    if isinstance(broker, RedisBroker):
        stats["broker"] = broker.stats()
    return stats


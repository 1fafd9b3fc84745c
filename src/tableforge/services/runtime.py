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
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tableforge.cache import Cache, build_cache
from tableforge.config import Settings
from tableforge.db.engine import Database
from tableforge.realtime.broker import Broker, MemoryBroker
from tableforge.realtime.hub import Hub
from tableforge.realtime.presence import MemoryPresence, Presence
from tableforge.realtime.redis_broker import BrokerOptions, RedisBroker
from tableforge.realtime.redis_presence import RedisPresence
from tableforge.realtime.registry import InstanceRegistry
from tableforge.realtime.revocation import Revocations
from tableforge.realtime.tickets import MemoryTickets, RedisTickets, TicketStore
from tableforge.services import events
from tableforge.services.guards import Guards, build_guards


@dataclass
class Runtime:
    settings: Settings
    db: Database
    broker: Broker
    hub: Hub
    presence: Presence
    cache: Cache
    tickets: TicketStore  # single-use WebSocket tickets (Redis in scale-out, in-process embedded)
    revocations: Revocations  # closes this instance's sockets of revoked sessions
    guards: Guards  # login/invite guess limits, socket caps, image decode slots
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


def shared_redis(url: str) -> Redis:
    """The client for presence and the instance registry.

    A blocking pool: a burst (1,000 sockets closing at shutdown) waits for a connection instead of
    failing with MaxConnectionsError. One retry on a fresh connection: after a Redis restart every
    pooled connection is dead, and without it each one fails a call once, whenever it is next drawn
    (seen 23 s after Redis was back)."""
    return Redis(connection_pool=BlockingConnectionPool.from_url(
        url, max_connections=32, timeout=5.0, socket_timeout=2.0, socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 1), retry_on_error=[RedisConnectionError, RedisTimeoutError]))


def build_runtime(settings: Settings) -> Runtime:
    db = Database(settings)
    broker: Broker
    presence: Presence
    redis: Redis | None = None
    if settings.redis_url is not None:
        prefix = settings.redis_prefix
        broker = RedisBroker(settings.redis_url, settings.instance_id, BrokerOptions(prefix=prefix))
        redis = shared_redis(settings.redis_url)
        presence = RedisPresence(redis, settings.instance_id, user_ttl=settings.instance_ttl_seconds,
                                 prefix=prefix)
    else:
        broker = MemoryBroker()
        presence = MemoryPresence(settings.instance_id)

    async def load_versions(room_ids: list[str]) -> dict[str, int]:
        async with db.read() as conn:
            return await events.current_versions(conn, room_ids)

    async def load_history(room_id: str, after: int, upto: int) -> list[tuple[int, str]]:
        async with db.read() as conn:
            return await events.history(conn, room_id, after, upto)

    hub = Hub(broker, settings.instance_id, versions_loader=load_versions, history_loader=load_history,
              send_queue=settings.ws_send_queue)
    registry = None
    if redis is not None:
        registry = InstanceRegistry(redis, settings.instance_id, stats=lambda: local_stats(hub, broker),
                                    interval=settings.instance_heartbeat_seconds, ttl=settings.instance_ttl_seconds,
                                    prefix=prefix)
    tickets: TicketStore = (RedisTickets(redis, settings.ws_ticket_seconds, settings.redis_prefix)
                            if redis is not None else MemoryTickets(settings.ws_ticket_seconds))
    return Runtime(settings=settings, db=db, broker=broker, hub=hub, presence=presence, cache=_cache(settings),
                   tickets=tickets, revocations=Revocations(hub), guards=build_guards(settings, redis),
                   registry=registry, redis=redis)


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


"""Backends chosen in one place, from the configured URLs, with lazy imports.

`TABLEFORGE_DATABASE_URL` picks the database (its scheme picks the driver, in `db/engine.py`);
`TABLEFORGE_REDIS_URL` set means scale-out: the Redis broker, presence, tickets, shared cache tier
and instance registry. Unset: the in-process ones, and the redis client library is never imported.
The services only ever see the interfaces in `services/runtime.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tableforge.cache import Cache, build_cache
from tableforge.config import Settings
from tableforge.db.engine import Database
from tableforge.db.event_log import EventLog
from tableforge.db.sqlite_event_log import SqliteEventLog
from tableforge.realtime.broker import Broker, MemoryBroker
from tableforge.realtime.hub import Hub
from tableforge.realtime.presence import MemoryPresence, Presence
from tableforge.realtime.revocation import Revocations
from tableforge.realtime.room_tokens import RoomTokens
from tableforge.realtime.tickets import MemoryTickets, TicketStore
from tableforge.services.admin import local_stats
from tableforge.services.attempts import MemoryAttemptStore
from tableforge.services.guards import build_guards
from tableforge.services.maintenance.lease import ProcessLease
from tableforge.services.maintenance.state import MaintenanceState
from tableforge.services.runtime import Runtime
from tableforge.services.snapshots import OneStatementSnapshots, SnapshotReader, TransactionalSnapshots

if TYPE_CHECKING:
    from redis.asyncio import Redis


def shared_redis(url: str) -> Redis:
    """The client for presence, tickets and the instance registry.

    A blocking pool: a burst (1,000 sockets closing at shutdown) waits for a connection instead of
    failing with MaxConnectionsError. One retry on a fresh connection: after a Redis restart every
    pooled connection is dead, and without it each one fails a call once, whenever it is next drawn
    (seen 23 s after Redis was back)."""
    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from tableforge.redis_client import TimedRedis

    return TimedRedis(connection_pool=BlockingConnectionPool.from_url(
        url, max_connections=32, timeout=5.0, socket_timeout=None, socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 1), retry_on_error=[RedisConnectionError, RedisTimeoutError]), io_timeout=2.0)


def build_runtime(settings: Settings) -> Runtime:
    db = Database(settings)
    events = _event_log(db, settings)
    snapshots = _snapshot_reader(db, events)
    load_versions, load_history = events.versions, events.history

    if settings.redis_url is None:
        broker: Broker = MemoryBroker()
        hub = Hub(broker, settings.instance_id, versions_loader=load_versions, history_loader=load_history,
                  send_queue=settings.ws_send_queue)
        presence: Presence = MemoryPresence(settings.instance_id)
        tickets: TicketStore = MemoryTickets(settings.ws_ticket_seconds)
        return Runtime(settings=settings, db=db, events=events, snapshots=snapshots, broker=broker, hub=hub,
                       presence=presence, cache=_cache(settings),
                       tickets=tickets, revocations=Revocations(hub), room_tokens=_room_tokens(hub),
                       guards=build_guards(settings, MemoryAttemptStore(settings.attempt_tracker_max_keys)),
                       maintenance=MaintenanceState(ProcessLease(settings.instance_id,
                                                                 settings.maintenance_lease_seconds)))

    from tableforge.realtime.redis_broker import BrokerOptions, RedisBroker
    from tableforge.realtime.redis_presence import RedisPresence
    from tableforge.realtime.registry import InstanceRegistry
    from tableforge.realtime.tickets import RedisTickets
    from tableforge.services.attempts_redis import RedisAttemptStore
    from tableforge.services.maintenance.redis_lease import RedisLease

    prefix = settings.redis_prefix
    broker = RedisBroker(settings.redis_url, settings.instance_id, BrokerOptions(prefix=prefix))
    hub = Hub(broker, settings.instance_id, versions_loader=load_versions, history_loader=load_history,
              send_queue=settings.ws_send_queue)
    redis = shared_redis(settings.redis_url)
    presence = RedisPresence(redis, settings.instance_id, user_ttl=settings.instance_ttl_seconds, prefix=prefix)
    registry = InstanceRegistry(redis, settings.instance_id, stats=lambda: local_stats(hub, broker),
                                interval=settings.instance_heartbeat_seconds, ttl=settings.instance_ttl_seconds,
                                prefix=prefix)
    return Runtime(settings=settings, db=db, events=events, snapshots=snapshots, broker=broker, hub=hub,
                   presence=presence, cache=_cache(settings),
                   tickets=RedisTickets(redis, settings.ws_ticket_seconds, prefix), revocations=Revocations(hub),
                   room_tokens=_room_tokens(hub),
                   guards=build_guards(settings, RedisAttemptStore(redis, prefix, MemoryAttemptStore(
                       settings.attempt_tracker_max_keys))), registry=registry, closers=[redis.aclose],
                   maintenance=MaintenanceState(RedisLease(redis, prefix, settings.instance_id,
                                                           settings.maintenance_lease_seconds)))


def _snapshot_reader(db: Database, events: EventLog) -> SnapshotReader:
    """PostgreSQL: the snapshot and its membership check in one statement; SQLite: a transaction."""
    return OneStatementSnapshots(events) if db.is_postgres else TransactionalSnapshots(events, db)


def _event_log(db: Database, settings: Settings) -> EventLog:
    """PostgreSQL: the one-statement hot path (imports asyncpg); SQLite: moves in batches."""
    if db.is_postgres:
        from tableforge.db.pg_event_log import PgEventLog

        return PgEventLog(db, settings.ws_history_size)
    return SqliteEventLog(db, settings.ws_history_size)


def _room_tokens(hub: Hub) -> RoomTokens:
    """Token owners of the local rooms, kept current from what the hub delivers (preview checks)."""
    room_tokens = RoomTokens()
    hub.add_observer(room_tokens)
    return room_tokens


def _cache(settings: Settings) -> Cache:
    if settings.redis_namespace:
        return build_cache(settings, prefix=f"{settings.redis_prefix}cache:")
    return build_cache(settings)

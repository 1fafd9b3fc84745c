"""Scale-out broker: Redis pub/sub with one channel per room, and a control plane.

Channels (all under one prefix, default `tableforge:`):
    {prefix}room:{room_id}          room events, subscribed while this instance has sockets there
    {prefix}control                 control messages for every instance
    {prefix}instance:{instance_id}  commands for one instance, and this instance's liveness probe

Why it is built this way:
- Versions and history come from the database (the hub orders, and reads what it missed from the
  stored event log), so this broker only carries bytes and keeps nothing in Redis. (It used to
  mirror every event into a capped stream that nothing read: 2.7 us of Redis time per event
  against 0.3 for the PUBLISH, +55 % client time per pipelined publish, and up to a few hundred
  bytes of Redis memory per kept event; `join {since}` reads the database, which survives a Redis
  restart and needs no epoch. Measured 2026-11-30, see docs/benchmarks.md.)
- One subscriber connection, read by one task that never awaits anything but the socket: each
  message goes to the hub's sync handlers, which only enqueue. (Un)subscribe commands are sent
  under a FIFO lock, so they reach Redis in call order, and `subscribe` returns once Redis has
  confirmed it: the hub reads the room's version after that and relies on seeing every later event.
- The subscriber is ours, not redis-py's `PubSub`: that one reconnects and resubscribes silently,
  and a silent reconnect is exactly when messages were lost. Here a lost connection ends the
  session; the supervisor reconnects with capped exponential backoff and jitter, resubscribes
  everything and calls `on_reset` so the hub catches up from the database.
- A subscription can die without an error (a proxy, a half-open TCP connection), so a probe
  publishes on our own instance channel every few seconds and expects to read it back.
- Publishing is the outbox's job (`redis_outbox.py`): batches, one pipeline per batch.
- Redis down must not stop players who share an instance: when Redis cannot take a message (or
  our subscription is down, so it would not come back to us), it is delivered to this instance's
  handlers directly; the hub drops duplicates by version and reads the rest from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tableforge.observability.logging import get_logger
from tableforge.observability.metrics import Children
from tableforge.realtime.broker import Broker
from tableforge.realtime.envelope import peek_ts, peek_version
from tableforge.realtime.redis_outbox import DROPPED, Outbox, Outgoing

log = get_logger(__name__)

DEFAULT_PREFIX: Final = "tableforge:"
PROBE_MARK: Final = b"\x00tableforge-probe:"
SUBSCRIBE_CHUNK: Final = 500

RECEIVED = Counter("tableforge_broker_received_total", "Pub/sub messages read from Redis, by kind", ["kind"])
RECONNECTS = Counter("tableforge_broker_reconnects_total", "Pub/sub subscriber connections lost and re-established")
PUBSUB_LAG = Histogram(
    "tableforge_broker_pubsub_lag_seconds", "Room message: envelope timestamp to read from pub/sub",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)
LOCAL_FALLBACKS = Counter(
    "tableforge_broker_local_fallbacks_total",
    "Messages delivered to this instance directly because they could not come back through Redis",
)
PROBE_FAILURES = Counter("tableforge_broker_probe_failures_total", "Liveness probes not read back in time")
RECEIVED_BY_KIND = Children(RECEIVED)
HEALTHY = Gauge("tableforge_broker_healthy", "1 while subscribed and the liveness probe answers",
                multiprocess_mode="livemin")


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """Timeouts, bounds and backoff of the Redis broker (defaults are the production values)."""

    prefix: str = DEFAULT_PREFIX
    outbox_limit: int = 10_000
    batch_max: int = 512
    pool_size: int = 4
    socket_timeout: float = 2.0
    connect_timeout: float = 2.0
    confirm_timeout: float = 3.0
    probe_interval: float = 5.0
    probe_timeout: float = 3.0
    min_backoff: float = 0.05
    max_backoff: float = 2.0  # after an outage, resubscribed within ~2 s of Redis answering again
    start_wait: float = 2.0


_Pending = tuple[bytes, bytes, "asyncio.Future[None] | None"]


class _Desync(Exception):
    """A (un)subscribe reply did not match the command we sent: start a fresh connection."""


def _client_name(instance_id: str) -> str:
    """CLIENT SETNAME refuses spaces and control characters; an odd instance id must not stop us connecting."""
    return "".join(ch if "!" <= ch <= "~" else "_" for ch in instance_id)[:100]


class RedisBroker(Broker):
    """The `Broker` for scale-out mode. Never raises on Redis trouble: it degrades to local delivery."""

    def __init__(self, url: str, instance_id: str, options: BrokerOptions | None = None) -> None:
        super().__init__()
        o = self.options = options or BrokerOptions()
        self.instance_id = instance_id
        self.prefix = o.prefix
        self._room_prefix = f"{o.prefix}room:".encode()
        self._control_channel = f"{o.prefix}control".encode()
        self._instance_prefix = f"{o.prefix}instance:".encode()
        self._instance_channel = self._instance_prefix + instance_id.encode()
        no_retry = Retry(NoBackoff(), 0)
        name = _client_name(instance_id)
        # The subscriber: created one connection at a time, read with no timeout (the probe
        # catches a dead one). The pool object only builds connections from the URL. RESP2,
        # because under RESP3 pub/sub replies are push frames that redis-py hands to its own
        # push handler instead of returning them to our reader.
        self._sub_factory = ConnectionPool.from_url(
            url, protocol=2, socket_connect_timeout=o.connect_timeout, socket_timeout=None, retry=no_retry,
            health_check_interval=0, client_name=f"tableforge-sub:{name}",
        )
        self._pub = Redis(connection_pool=BlockingConnectionPool.from_url(
            url, max_connections=o.pool_size, timeout=o.connect_timeout, socket_timeout=o.socket_timeout,
            socket_connect_timeout=o.connect_timeout, retry=no_retry, health_check_interval=0,
            client_name=f"tableforge-pub:{name}",
        ))
        self._outbox = Outbox(self._pub, limit=o.outbox_limit, batch_max=o.batch_max,
                              deliver_locally=self._fallback, subscribed=lambda: self._subscribed,
                              on_failure=self._publisher_failed)
        self._rooms: set[str] = set()  # what we want to be subscribed to, whatever the connection
        self._conn: AbstractConnection | None = None
        self._cmd_lock = asyncio.Lock()
        self._pending: deque[_Pending] = deque()
        self._ready_marker: asyncio.Future[None] | None = None
        self._subscribed = False
        self._probe_ok = True
        self._kick: asyncio.Event | None = None
        self._probe_waiter: tuple[bytes, asyncio.Future[None]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._first_session = asyncio.Event()
        self.reconnects = 0
        self.resets = 0
        HEALTHY.set(0)

    # -- names ---------------------------------------------------------------------------------
    def room_channel(self, room_id: str) -> bytes:
        return self._room_prefix + room_id.encode()

    def instance_channel(self, instance_id: str) -> bytes:
        return self._instance_prefix + instance_id.encode()

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the subscriber, writer and probe; wait briefly for the first subscription.

        Redis being down at start-up is not fatal: the instance serves its own players and
        joins the others when Redis answers (`healthy` says which).
        """
        if self._tasks:
            return
        self._closing = False
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._supervise(), name=f"broker-sub-{self.instance_id}"),
            self._outbox.start(f"broker-pub-{self.instance_id}"),
            loop.create_task(self._probe_loop(), name=f"broker-probe-{self.instance_id}"),
        ]
        if self.options.start_wait > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.start_wait):
                    await self._first_session.wait()
        if not self._subscribed:
            log.warning("broker.start_degraded", instance_id=self.instance_id)

    async def close(self) -> None:
        """Flush what is queued (briefly), then stop every task and close both connections."""
        await self._outbox.flush(1.0)
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._outbox.stop()
        self._rooms.clear()
        self._set_subscribed(False)
        with contextlib.suppress(Exception):
            await self._pub.aclose()
        with contextlib.suppress(Exception):
            await self._sub_factory.disconnect()

    @property
    def healthy(self) -> bool:
        return self._subscribed and self._probe_ok and not self._outbox.down

    def stats(self) -> dict[str, Any]:
        """For /ready and the admin stats: the state of both connections."""
        return {
            "subscribed": self._subscribed,
            "probe_ok": self._probe_ok,
            "publisher_down": self._outbox.down,
            "rooms": len(self._rooms),
            "outbox": len(self._outbox),
            "reconnects": self.reconnects,
        }

    # -- subscriptions -------------------------------------------------------------------------
    async def subscribe(self, room_id: str) -> None:
        """Subscribe to the room; returns once Redis confirmed it (or at once while disconnected,
        in which case the next session subscribes and `on_reset` fills the gap)."""
        self._rooms.add(room_id)
        await self._command(b"SUBSCRIBE", self.room_channel(room_id))

    async def unsubscribe(self, room_id: str) -> None:
        self._rooms.discard(room_id)
        await self._command(b"UNSUBSCRIBE", self.room_channel(room_id))

    async def _command(self, command: bytes, channel: bytes) -> None:
        # The lock is taken before any other await, so commands queue in call order.
        async with self._cmd_lock:
            conn = self._conn
            if conn is None or not conn.is_connected:
                return
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._pending.append((command.lower(), channel, waiter))
            try:
                # Bounded: a Redis that stopped reading must not hold the lock (and every join) forever.
                async with asyncio.timeout(self.options.confirm_timeout):
                    await conn.send_packed_command(conn.pack_command(command, channel), check_health=False)
            except (RedisError, OSError, TimeoutError) as exc:
                self._restart_session(f"send failed: {exc!r}")
                return
        try:
            async with asyncio.timeout(self.options.confirm_timeout):
                await waiter
        except TimeoutError:
            self._restart_session(f"{command.decode()} not confirmed in time")

    def _restart_session(self, reason: str) -> None:
        kick = self._kick
        if kick is not None and not kick.is_set():
            log.warning("broker.restart_subscriber", reason=reason, instance_id=self.instance_id)
            kick.set()

    # -- publishing ------------------------------------------------------------------------------
    async def publish(self, room_id: str, data: bytes) -> None:
        """Queue a room envelope. Stored events (version > 0) are never dropped: when the outbox
        is full this waits for room. Ephemeral ones are dropped instead (the protocol allows it)."""
        item = Outgoing(self.room_channel(room_id), data, room_id=room_id)
        if peek_version(data) > 0:
            item.kind = "stored"
            await self._outbox.put_and_wait(item)
        elif self._outbox.full:
            DROPPED.labels("outbox_full").inc()
        else:
            self._outbox.put(item)

    async def publish_control(self, data: bytes, instance_id: str | None = None) -> None:
        channel = self._control_channel if instance_id is None else self.instance_channel(instance_id)
        item = Outgoing(channel, data, control=instance_id is None or instance_id == self.instance_id,
                        kind="control")
        await self._outbox.put_and_wait(item)

    def _publisher_failed(self, reason: str) -> None:
        self._update_health()
        self._restart_session(reason)

    def _fallback(self, batch: Sequence[Outgoing]) -> None:
        """Deliver to this instance what was meant for it, at most once per message."""
        for item in batch:
            if item.local_done:
                continue
            item.local_done = True
            try:
                if item.room_id is not None:
                    if item.room_id in self._rooms:
                        LOCAL_FALLBACKS.inc()
                        self._on_room(item.room_id, item.data)
                elif item.control:
                    LOCAL_FALLBACKS.inc()
                    self._on_control(item.data)
            except Exception:
                DROPPED.labels("handler_error").inc()
                log.exception("broker.local_handler_failed")

    # -- the subscriber --------------------------------------------------------------------------
    async def _supervise(self) -> None:
        """One session at a time; a lost one is replaced after a jittered, growing pause."""
        failures = 0
        while True:
            kick = self._kick = asyncio.Event()
            session = asyncio.ensure_future(self._session())
            kicked = asyncio.ensure_future(kick.wait())
            try:
                await asyncio.wait({session, kicked}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (session, kicked):
                    task.cancel()
                await asyncio.gather(session, kicked, return_exceptions=True)
            if session.done() and not session.cancelled() and session.exception() is not None:
                exc = session.exception()
                (log.debug if failures else log.warning)("broker.subscriber_lost", error=repr(exc),
                                                         instance_id=self.instance_id)
            if self._subscribed:
                failures = 0  # it had worked: retry at once, then back off if it keeps failing
            self._set_subscribed(False)
            delay = min(self.options.max_backoff, self.options.min_backoff * (2**failures))
            failures = min(failures + 1, 30)
            await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))

    async def _session(self) -> None:
        conn = self._sub_factory.make_connection()
        try:
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            # The handshake reads with the connection's timeout, which is none: bound it here.
            async with asyncio.timeout(self.options.connect_timeout + self.options.confirm_timeout):
                await conn.connect()
                async with self._cmd_lock:
                    self._pending.clear()
                    channels = [self._control_channel, self._instance_channel,
                                *(self.room_channel(r) for r in sorted(self._rooms))]
                    for start in range(0, len(channels), SUBSCRIBE_CHUNK):
                        chunk = channels[start : start + SUBSCRIBE_CHUNK]
                        self._pending.extend((b"subscribe", channel, None) for channel in chunk)
                        if start + SUBSCRIBE_CHUNK >= len(channels):
                            self._pending[-1] = (b"subscribe", chunk[-1], ready)
                        await conn.send_packed_command(conn.pack_command(b"SUBSCRIBE", *chunk), check_health=False)
                    self._ready_marker = ready
                    self._conn = conn
            await self._read_loop(conn)
        finally:
            self._conn = None
            self._ready_marker = None
            for _, _, waiter in self._pending:
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)  # the next session resubscribes from self._rooms
            self._pending.clear()
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)

    async def _read_loop(self, conn: AbstractConnection) -> None:
        room_prefix = self._room_prefix
        skip = len(room_prefix)
        while True:
            reply = await conn.read_response(timeout=math.inf)
            if not isinstance(reply, list) or len(reply) < 3:
                continue
            kind = reply[0]
            if kind == b"message":
                channel: bytes = reply[1]
                data: bytes = reply[2]
                if channel.startswith(room_prefix):
                    self._on_room_message(channel[skip:].decode(), data)
                else:
                    self._on_control_message(channel, data)
            elif kind in (b"subscribe", b"unsubscribe"):
                self._confirm(kind, reply[1])

    def _confirm(self, kind: bytes, channel: bytes) -> None:
        if not self._pending:
            raise _Desync(f"unexpected {kind!r} reply")
        want_kind, want_channel, waiter = self._pending.popleft()
        if want_kind != kind or want_channel != channel:
            raise _Desync(f"expected {want_kind!r} {want_channel!r}, got {kind!r} {channel!r}")
        if waiter is None:
            return
        if waiter is self._ready_marker:
            self._became_ready()
        if not waiter.done():
            waiter.set_result(None)

    def _became_ready(self) -> None:
        """Everything is subscribed: whatever was published while we were away is in the database."""
        self._outbox.down = False
        self._probe_ok = True
        self._set_subscribed(True)
        if self._first_session.is_set():
            self.reconnects += 1
            RECONNECTS.inc()
        self._first_session.set()
        self.resets += 1
        try:
            self._on_reset()
        except Exception:
            log.exception("broker.reset_handler_failed")
        log.info("broker.subscribed", instance_id=self.instance_id, rooms=len(self._rooms))

    def _on_room_message(self, room_id: str, data: bytes) -> None:
        RECEIVED_BY_KIND["room"].inc()
        ts = peek_ts(data)
        if ts is not None:
            PUBSUB_LAG.observe(max(0.0, time.time() - ts / 1000))
        if room_id not in self._rooms:
            return  # unsubscribed a moment ago
        try:
            self._on_room(room_id, data)
        except Exception:
            DROPPED.labels("handler_error").inc()
            log.exception("broker.room_handler_failed")

    def _on_control_message(self, channel: bytes, data: bytes) -> None:
        if channel == self._instance_channel and data.startswith(PROBE_MARK):
            RECEIVED_BY_KIND["probe"].inc()
            probe = self._probe_waiter
            if probe is not None and probe[0] == data and not probe[1].done():
                probe[1].set_result(None)
            return
        RECEIVED_BY_KIND["control"].inc()
        try:
            self._on_control(data)
        except Exception:
            DROPPED.labels("handler_error").inc()
            log.exception("broker.control_handler_failed")

    # -- liveness --------------------------------------------------------------------------------
    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.probe_interval)
            if not self._subscribed:
                continue
            if await self.probe():
                continue
            PROBE_FAILURES.inc()
            self._probe_ok = False
            self._update_health()
            self._restart_session("liveness probe not answered")

    async def probe(self) -> bool:
        """Publish a nonce on our own channel and wait to read it back through the subscriber."""
        payload = PROBE_MARK + secrets.token_hex(8).encode()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probe_waiter = (payload, waiter)
        item = Outgoing(self._instance_channel, payload, kind="probe")
        try:
            async with asyncio.timeout(self.options.probe_timeout):
                self._outbox.put(item, first=True)  # ahead of any backlog: we test the subscription
                await waiter
        except TimeoutError:
            return False
        finally:
            self._probe_waiter = None
        self._probe_ok = True
        self._update_health()
        return True

    def _set_subscribed(self, value: bool) -> None:
        self._subscribed = value
        self._update_health()

    def _update_health(self) -> None:
        HEALTHY.set(1 if self.healthy else 0)

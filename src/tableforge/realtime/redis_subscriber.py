"""The reading half of the Redis broker: one pub/sub connection of our own, read by one task.

- The subscriber is ours, not redis-py's `PubSub`: that one reconnects and resubscribes silently,
  and a silent reconnect is exactly when messages were lost. Here a lost connection ends the
  session; the supervisor reconnects with capped exponential backoff and jitter, resubscribes
  everything and calls `on_ready`, so the broker's owner catches up from the database.
- The read loop never awaits anything but the socket: each message goes straight to the broker's
  sync handlers, which only enqueue.
- (Un)subscribe commands are sent under a FIFO lock, so they reach Redis in call order, and
  `subscribe` returns once Redis has confirmed it: the hub reads the room's version after that and
  relies on seeing every later event. A reply that does not match the command sent ends the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from prometheus_client import Counter, Histogram
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tableforge import tasks
from tableforge.observability.logging import get_logger
from tableforge.observability.metrics import Children
from tableforge.realtime.envelope import peek_ts
from tableforge.realtime.redis_outbox import DROPPED

log = get_logger(__name__)

SUBSCRIBE_CHUNK: Final = 500

RECEIVED = Counter("tableforge_broker_received_total", "Pub/sub messages read from Redis, by kind", ["kind"])
RECONNECTS = Counter("tableforge_broker_reconnects_total", "Pub/sub subscriber connections lost and re-established")
PUBSUB_LAG = Histogram(
    "tableforge_broker_pubsub_lag_seconds", "Room message: envelope timestamp to read from pub/sub",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)
RECEIVED_BY_KIND = Children(RECEIVED)


class Channels:
    """The broker's channel names, all under one prefix (built once: a publish only appends the id).
        {prefix}room:{room_id}          room events, subscribed while this instance has sockets there
        {prefix}control                 control messages for every instance
        {prefix}instance:{instance_id}  commands for one instance, and this instance's liveness probe
    """

    __slots__ = ("_instance_prefix", "control", "instance_id", "own", "prefix", "room_prefix")

    def __init__(self, prefix: str, instance_id: str) -> None:
        self.prefix = prefix
        self.instance_id = instance_id
        self.room_prefix = f"{prefix}room:".encode()
        self.control = f"{prefix}control".encode()
        self._instance_prefix = f"{prefix}instance:".encode()
        self.own = self.instance(instance_id)  # this instance's channel

    def room(self, room_id: str) -> bytes:
        return self.room_prefix + room_id.encode()

    def instance(self, instance_id: str) -> bytes:
        return self._instance_prefix + instance_id.encode()


_Pending = tuple[bytes, bytes, "asyncio.Future[None] | None"]


class _Desync(Exception):
    """A (un)subscribe reply did not match the command we sent: start a fresh connection."""


class RedisSubscriber:
    """Keeps this instance subscribed to the control channels and to `rooms`, across reconnects.

    `on_room(room_id, data)` gets the messages of the rooms still wanted (the broker's filter, which
    drops this instance's own), `on_control(channel, data)` everything else;
    `on_ready()` runs once a session has every channel subscribed, `on_lost()` when a subscribed
    session ends. None of them may block."""

    def __init__(self, url: str, channels: Channels, *, client_name: str, connect_timeout: float,
                 confirm_timeout: float, min_backoff: float, max_backoff: float,
                 on_room: Callable[[str, bytes], None], on_control: Callable[[bytes, bytes], None],
                 on_ready: Callable[[], None], on_lost: Callable[[], None]) -> None:
        self.channels = channels
        self.connect_timeout = connect_timeout
        self.confirm_timeout = confirm_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.on_room = on_room
        self._on_control = on_control
        self._on_ready = on_ready
        self._on_lost = on_lost
        # Created one connection at a time, read with no timeout (the broker's probe catches a dead
        # one). The pool object only builds connections from the URL. RESP2, because under RESP3
        # pub/sub replies are push frames that redis-py hands to its own push handler instead of
        # returning them to our reader.
        self._factory = ConnectionPool.from_url(
            url, protocol=2, socket_connect_timeout=connect_timeout, socket_timeout=None,
            retry=Retry(NoBackoff(), 0), health_check_interval=0, client_name=client_name,
        )
        self.rooms: set[str] = set()  # what we want to be subscribed to, whatever the connection
        # Rooms surely subscribed at Redis right now: added when Redis confirms a SUBSCRIBE (no
        # UNSUBSCRIBE behind it), removed before an UNSUBSCRIBE is sent and when a session ends. The
        # epoch changes with it: a PUBLISH reply read in the epoch it was sent in ran while
        # `confirmed` was true (the broker's unshared rooms rely on it).
        self.confirmed: set[str] = set()
        self.epoch = 0
        self._conn: AbstractConnection | None = None
        self._cmd_lock = asyncio.Lock()
        self._pending: deque[_Pending] = deque()
        self._ready_marker: asyncio.Future[None] | None = None
        self._subscribed = False
        self._kick: asyncio.Event | None = None
        self._first_session = asyncio.Event()
        self.reconnects = 0
        self.resets = 0

    @property
    def subscribed(self) -> bool:
        """Every wanted channel is subscribed on a live session."""
        return self._subscribed

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, name: str) -> asyncio.Task[None]:
        """The supervisor task (the caller cancels it to stop)."""
        return asyncio.get_running_loop().create_task(self._supervise(), name=name)

    async def wait_first_session(self, seconds: float) -> None:
        """Wait up to `seconds` for the first session to be ready."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._first_session.wait()

    async def close(self) -> None:
        """After the supervisor task was cancelled: forget the rooms, drop the connections."""
        self.rooms.clear()
        self._set_lost()
        with contextlib.suppress(Exception):
            await self._factory.disconnect()

    def restart(self, reason: str) -> None:
        """End the current session (the supervisor starts a new one)."""
        kick = self._kick
        if kick is not None and not kick.is_set():
            log.warning("broker.restart_subscriber", reason=reason, instance_id=self.channels.instance_id)
            kick.set()

    # -- subscriptions -------------------------------------------------------------------------
    async def subscribe(self, room_id: str) -> None:
        """Returns once Redis confirmed it (or at once while disconnected, in which case the next
        session subscribes and `on_ready` fills the gap)."""
        self.rooms.add(room_id)
        await self._command(b"SUBSCRIBE", self.channels.room(room_id))

    async def unsubscribe(self, room_id: str) -> None:
        self.rooms.discard(room_id)
        # Not confirmed from now on: Redis may run the UNSUBSCRIBE before we read its reply.
        self.confirmed.discard(room_id)
        self.epoch += 1
        await self._command(b"UNSUBSCRIBE", self.channels.room(room_id))

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
                async with asyncio.timeout(self.confirm_timeout):
                    await conn.send_packed_command(conn.pack_command(command, channel), check_health=False)
            except (RedisError, OSError, TimeoutError) as exc:
                self.restart(f"send failed: {exc!r}")
                return
        try:
            async with asyncio.timeout(self.confirm_timeout):
                await waiter
        except TimeoutError:
            self.restart(f"{command.decode()} not confirmed in time")

    # -- sessions ------------------------------------------------------------------------------
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
                await tasks.stop([session, kicked])
            if session.done() and not session.cancelled() and session.exception() is not None:
                exc = session.exception()
                (log.debug if failures else log.warning)("broker.subscriber_lost", error=repr(exc),
                                                         instance_id=self.channels.instance_id)
            if self._subscribed:
                failures = 0  # it had worked: retry at once, then back off if it keeps failing
            self._set_lost()
            delay = min(self.max_backoff, self.min_backoff * (2**failures))
            failures = min(failures + 1, 30)
            await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))

    async def _session(self) -> None:
        conn = self._factory.make_connection()
        try:
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            # The handshake reads with the connection's timeout, which is none: bound it here.
            async with asyncio.timeout(self.connect_timeout + self.confirm_timeout):
                await conn.connect()
                async with self._cmd_lock:
                    self._pending.clear()
                    channels = [self.channels.control, self.channels.own,
                                *(self.channels.room(r) for r in sorted(self.rooms))]
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
                    waiter.set_result(None)  # the next session resubscribes from self.rooms
            self._pending.clear()
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)

    async def _read_loop(self, conn: AbstractConnection) -> None:
        room_prefix = self.channels.room_prefix
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
                    self._room_message(channel[skip:].decode(), data)
                else:
                    self._on_control(channel, data)
            elif kind in (b"subscribe", b"unsubscribe"):
                self._confirm(kind, reply[1])

    def _room_message(self, room_id: str, data: bytes) -> None:
        RECEIVED_BY_KIND["room"].inc()
        ts = peek_ts(data)
        if ts is not None:
            PUBSUB_LAG.observe(max(0.0, time.time() - ts / 1000))
        if room_id not in self.rooms:
            return  # unsubscribed a moment ago
        try:
            self.on_room(room_id, data)
        except Exception:
            DROPPED.labels("handler_error").inc()
            log.exception("broker.room_handler_failed")

    def _confirm(self, kind: bytes, channel: bytes) -> None:
        if not self._pending:
            raise _Desync(f"unexpected {kind!r} reply")
        want_kind, want_channel, waiter = self._pending.popleft()
        if want_kind != kind or want_channel != channel:
            raise _Desync(f"expected {want_kind!r} {want_channel!r}, got {kind!r} {channel!r}")
        if kind == b"subscribe" and channel.startswith(self.channels.room_prefix) and not any(
                k == b"unsubscribe" and c == channel for k, c, _ in self._pending):
            self.confirmed.add(channel[len(self.channels.room_prefix):].decode())
            self.epoch += 1
        if waiter is None:
            return
        if waiter is self._ready_marker:
            self._became_ready()
        if not waiter.done():
            waiter.set_result(None)

    def _became_ready(self) -> None:
        """Everything is subscribed: whatever was published while we were away is in the database."""
        self._subscribed = True
        if self._first_session.is_set():
            self.reconnects += 1
            RECONNECTS.inc()
        self._first_session.set()
        self.resets += 1
        self._on_ready()
        log.info("broker.subscribed", instance_id=self.channels.instance_id, rooms=len(self.rooms))

    def _set_lost(self) -> None:
        self._subscribed = False
        self.confirmed.clear()
        self.epoch += 1
        self._on_lost()

"""Scale-out broker: Redis pub/sub with one channel per room, and a control plane.

Channels (all under one prefix, default `tableforge:`): see `redis_subscriber.Channels`.

Why it is built this way:
- Versions and history come from the database (the hub orders, and reads what it missed from the
  stored event log), so this broker only carries bytes and keeps nothing in Redis. (It used to
  mirror every event into a capped stream that nothing read: 2.7 us of Redis time per event
  against 0.3 for the PUBLISH, +55 % client time per pipelined publish, and up to a few hundred
  bytes of Redis memory per kept event; `join {since}` reads the database, which survives a Redis
  restart and needs no epoch. Measured 2026-11-30, see docs/benchmarks.md.)
- Reading is the subscriber's job (`redis_subscriber.py`): one connection of our own, read by one
  task, resubscribed after a reconnect, after which `on_reset` lets the hub catch up from the database.
- Publishing is the outbox's job (`redis_outbox.py`): batches, one pipeline per batch.
- A subscription can die without an error (a proxy, a half-open TCP connection), so a probe (here)
  publishes on our own instance channel every few seconds and expects to read it back.
- Room messages go to the other instances only: the hub has delivered them to its own sockets when
  it published. Redis sends them back to us too (pub/sub reaches every subscriber), and we drop
  them by the envelope's sender (so instance ids must be unique), before anything decodes them. So Redis down does
  not stop players who share an instance; a control message meant for us that Redis cannot take (or
  would not bring back, our subscription being down) is handed to our handler directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client import Counter, Gauge
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tableforge import tasks
from tableforge.observability.logging import get_logger
from tableforge.realtime.broker import Broker, ControlHandler, RoomHandler
from tableforge.realtime.envelope import peek_version, sent_from
from tableforge.realtime.redis_outbox import DROPPED, Outbox, Outgoing
from tableforge.realtime.redis_sharing import Sharing, hello, hello_sender
from tableforge.realtime.redis_subscriber import RECEIVED_BY_KIND, Channels, RedisSubscriber
from tableforge.redis_client import TimedRedis

log = get_logger(__name__)

DEFAULT_PREFIX: Final = "tableforge:"
PROBE_MARK: Final = b"\x00tableforge-probe:"

LOCAL_FALLBACKS = Counter(
    "tableforge_broker_local_fallbacks_total",
    "Control messages handed to this instance directly because they could not come back through Redis",
)
PROBE_FAILURES = Counter("tableforge_broker_probe_failures_total", "Liveness probes not read back in time")
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
        self.channels = Channels(o.prefix, instance_id)
        self._own = f"{instance_id}/".encode()  # the sender field of what this instance publishes
        name = _client_name(instance_id)
        self._subscriber = RedisSubscriber(
            url, self.channels, client_name=f"tableforge-sub:{name}", connect_timeout=o.connect_timeout,
            confirm_timeout=o.confirm_timeout, min_backoff=o.min_backoff, max_backoff=o.max_backoff,
            on_room=self._from_redis, on_control=self._control_message, on_ready=self._became_ready,
            on_lost=self._session_lost)
        self._pub = TimedRedis(connection_pool=BlockingConnectionPool.from_url(
            url, max_connections=o.pool_size, timeout=o.connect_timeout, socket_timeout=None,
            socket_connect_timeout=o.connect_timeout, retry=Retry(NoBackoff(), 0), health_check_interval=0,
            client_name=f"tableforge-pub:{name}",
        ), io_timeout=o.socket_timeout)
        self._outbox = Outbox(self._pub, limit=o.outbox_limit, batch_max=o.batch_max,
                              deliver_locally=self._fallback, subscribed=lambda: self._subscriber.subscribed,
                              on_failure=self._publisher_failed, epoch=lambda: self._subscriber.epoch,
                              on_replies=lambda rooms, counts, epoch: self._sharing.replies(rooms, counts, epoch))
        self._sharing = Sharing(self._subscriber, self._republish)
        self._probe_ok = True
        self._probe_waiter: tuple[bytes, asyncio.Future[None]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        HEALTHY.set(0)

    # -- counters ------------------------------------------------------------------------------
    @property
    def reconnects(self) -> int:
        """Subscriber sessions re-established after the first one."""
        return self._subscriber.reconnects

    @property
    def resets(self) -> int:
        """Sessions that became ready (each called `on_reset`)."""
        return self._subscriber.resets

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the subscriber, writer and probe; wait briefly for the first subscription.

        Redis being down at start-up is not fatal: the instance serves its own players and
        joins the others when Redis answers (`healthy` says which).
        """
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            self._subscriber.start(f"broker-sub-{self.instance_id}"),
            self._outbox.start(f"broker-pub-{self.instance_id}"),
            loop.create_task(self._probe_loop(), name=f"broker-probe-{self.instance_id}"),
        ]
        if self.options.start_wait > 0:
            await self._subscriber.wait_first_session(self.options.start_wait)
        if not self._subscriber.subscribed:
            log.warning("broker.start_degraded", instance_id=self.instance_id)

    async def close(self) -> None:
        """Flush what is queued (briefly), then stop every task and close both connections."""
        await self._outbox.flush(1.0)
        await tasks.stop(self._tasks)
        self._tasks = []
        self._outbox.stop()
        await self._subscriber.close()
        with contextlib.suppress(Exception):
            await self._pub.aclose()

    @property
    def healthy(self) -> bool:
        return self._subscriber.subscribed and self._probe_ok and not self._outbox.down

    def stats(self) -> dict[str, Any]:
        """For /ready and the admin stats: the state of both connections."""
        return {
            "subscribed": self._subscriber.subscribed,
            "probe_ok": self._probe_ok,
            "publisher_down": self._outbox.down,
            "rooms": len(self._subscriber.rooms),
            "outbox": len(self._outbox),
            "unshared_rooms": len(self._sharing),
            "reconnects": self._subscriber.reconnects,
        }

    def set_handlers(self, on_room: RoomHandler, on_control: ControlHandler,
                     on_reset: Callable[[], None] | None = None) -> None:
        super().set_handlers(on_room, on_control, on_reset)

    # -- subscriptions -------------------------------------------------------------------------
    async def subscribe(self, room_id: str) -> None:
        """Subscribe to the room; returns once Redis confirmed it (or at once while disconnected,
        in which case the next session subscribes and `on_reset` fills the gap). Then say hello in
        the room, so that an instance that had it to itself publishes it again (redis_sharing.py)."""
        await self._subscriber.subscribe(room_id)
        if room_id in self._subscriber.confirmed:
            self._outbox.put(Outgoing(self.channels.room(room_id), hello(self.instance_id), kind="hello",
                                      room=room_id))

    async def unsubscribe(self, room_id: str) -> None:
        self._sharing.share(room_id, "left")  # a hello for it would not reach us any more
        await self._subscriber.unsubscribe(room_id)

    def _became_ready(self) -> None:
        """Subscribed again: whatever was published while we were away is in the database. Every
        room was subscribed anew without a hello each: one hello on the control channel makes every
        other instance share all its rooms again."""
        self._outbox.down = False
        self._probe_ok = True
        self._update_health()
        self._outbox.put(Outgoing(self.channels.control, hello(self.instance_id), kind="hello"))
        try:
            self._on_reset()
        except Exception:
            log.exception("broker.reset_handler_failed")

    def _from_redis(self, room_id: str, data: bytes) -> None:
        """A room message read from Redis. Our own come back too, and the hub delivered those when
        it published them: dropped here, by the sender field, without decoding. A hello is the
        broker's own business."""
        if sent_from(data, self._own):
            RECEIVED_BY_KIND["own"].inc()
            return
        if data[:1] == b"\x00":
            sender = hello_sender(data)
            RECEIVED_BY_KIND["hello"].inc()
            if sender is not None and sender != self.instance_id:
                self._sharing.share(room_id, "hello")
            return
        if room_id in self._sharing:
            self._sharing.share(room_id, "heard")  # someone else is in the room: maybe one that says no hello
        self._on_room(room_id, data)

    def _republish(self, room_id: str, data: bytes) -> None:
        """A stored envelope kept back in an unshared room, out now (never dropped)."""
        self._outbox.put(Outgoing(self.channels.room(room_id), data, kind="stored", room=room_id))

    def _session_lost(self) -> None:
        self._sharing.share_all("session")
        self._update_health()

    def _control_message(self, channel: bytes, data: bytes) -> None:
        if channel == self.channels.control and (sender := hello_sender(data)) is not None:
            RECEIVED_BY_KIND["hello"].inc()
            if sender != self.instance_id:
                self._sharing.share_all("hello")
            return
        if channel == self.channels.own and data.startswith(PROBE_MARK):
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

    # -- publishing ------------------------------------------------------------------------------
    async def publish(self, room_id: str, data: bytes) -> None:
        """Queue a room envelope. Stored events (version > 0) are never dropped: when the outbox
        is full this waits for room (not for Redis). Ephemeral ones are dropped instead (the protocol
        allows it)."""
        if self._sharing.keep(room_id, data):
            return
        if peek_version(data) > 0:
            await self._outbox.put_when_room(Outgoing(self.channels.room(room_id), data, kind="stored", room=room_id))
        else:
            self.relay(room_id, data)

    def relay(self, room_id: str, data: bytes) -> None:
        if self._sharing.keep(room_id, data):
            return
        if self._outbox.full:
            DROPPED.labels("outbox_full").inc()
        else:
            self._outbox.put(Outgoing(self.channels.room(room_id), data, room=room_id))

    async def publish_control(self, data: bytes, instance_id: str | None = None) -> None:
        channel = self.channels.control if instance_id is None else self.channels.instance(instance_id)
        item = Outgoing(channel, data, control=instance_id is None or instance_id == self.instance_id,
                        kind="control")
        await self._outbox.put_and_wait(item)

    def _publisher_failed(self, reason: str) -> None:
        self._update_health()
        self._subscriber.restart(reason)

    def _fallback(self, batch: Sequence[Outgoing]) -> None:
        """Hand this instance the control messages meant for it that Redis will not bring back, at
        most once each (room messages: the hub delivered ours when it published them)."""
        for item in batch:
            if not item.control or item.local_done:
                continue
            item.local_done = True
            try:
                LOCAL_FALLBACKS.inc()
                self._on_control(item.data)
            except Exception:
                DROPPED.labels("handler_error").inc()
                log.exception("broker.local_handler_failed")

    # -- liveness --------------------------------------------------------------------------------
    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.probe_interval)
            if not self._subscriber.subscribed:
                continue
            if await self.probe():
                continue
            PROBE_FAILURES.inc()
            self._probe_ok = False
            self._update_health()
            self._subscriber.restart("liveness probe not answered")

    async def probe(self) -> bool:
        """Publish a nonce on our own channel and wait to read it back through the subscriber."""
        payload = PROBE_MARK + secrets.token_hex(8).encode()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probe_waiter = (payload, waiter)
        item = Outgoing(self.channels.own, payload, kind="probe")
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

    def _update_health(self) -> None:
        HEALTHY.set(1 if self.healthy else 0)

"""The hub: this instance's sockets, grouped by room, fed in version order.

Room versions are taken in the database, inside the statement or transaction that stores the
change, so two instances may publish v7 and v8 in either order, and a broker outage may lose some
publishes altogether. Each local room (local_room.py) knows the next version to deliver and the
highest known to exist, holds early arrivals, and has one catch-up task that reads what is missing
from the stored event log in batches, after giving the broker `gap_wait` to bring it itself.

A hole larger than half a send queue (an outage, or history already pruned) is not replayed
event by event: each socket gets `room.resync` and rejoins with `since`, which answers with one
frame. A socket whose send queue could not take a catch-up batch gets the same.

While the broker is down, nothing comes from other instances, so the hub polls the log for every
local room every `poll_interval`; when the broker comes back (`on_broker_reset`) it checks every
room's latest version and asks the other instances to do the same (what this instance published
while cut off never reached them). A room that stays behind for `stall_after` seconds is counted
as stalled (`/ready` says degraded) and its filler is restarted.

A socket that is joining is "pending": its events are held until its snapshot (or history) ack
is queued, then only newer ones follow. What each socket receives of an event (the event, a variant
for its audience, or room.skip) is delivery.py's business; every socket still gets every version.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from tableforge.domain import audience
from tableforge.domain.audience import Logged, Routing, View
from tableforge.observability import metrics
from tableforge.observability.logging import get_logger
from tableforge.realtime import delivery
from tableforge.realtime.broker import Broker
from tableforge.realtime.connection import Connection
from tableforge.realtime.envelope import EVERYONE, Envelope, pack, unpack
from tableforge.realtime.local_room import PENDING, LocalRoom, RoomObserver, resync_frame, ts_of

log = get_logger(__name__)

VersionsLoader = Callable[[list[str]], Awaitable[dict[str, int]]]
HistoryLoader = Callable[[str, int, int], Awaitable[list[Logged]]]
ControlHandler = Callable[[dict[str, Any]], Awaitable[None] | None]
CHECK_ROOMS = "hub.check_rooms"  # control message: every instance re-reads its rooms' versions
_VERSIONS_CHUNK = 500


class Hub:
    def __init__(self, broker: Broker, instance_id: str, *, versions_loader: VersionsLoader,
                 history_loader: HistoryLoader, reorder_limit: int = 1000, pending_limit: int = 1000,
                 send_queue: int = 512, gap_wait: float = 0.25, batch: int = 200, poll_interval: float = 0.1,
                 stall_after: float = 5.0, fill_concurrency: int = 8) -> None:
        self.broker = broker
        self.instance_id = instance_id
        self.rooms: dict[str, LocalRoom] = {}
        self.connections: dict[str, Connection] = {}
        self._versions_loader = versions_loader
        self._history_loader = history_loader
        self._reorder_limit = reorder_limit
        self._pending_limit = pending_limit
        self._gap_wait = gap_wait
        # Catch-up never queues more than a quarter of a send queue at once, and a hole bigger than
        # half of one is a resync, not a replay: a fault must not close a healthy socket as too slow.
        self._batch = max(1, min(batch, send_queue // 4))
        self._resync_after = max(1, send_queue // 2)
        self._send_queue = send_queue
        self._poll_interval = poll_interval
        self.stall_after = stall_after
        self._fill_slots = asyncio.Semaphore(fill_concurrency)
        self._control_handlers: dict[str, ControlHandler] = {CHECK_ROOMS: self._on_check_rooms}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._checking: asyncio.Task[None] | None = None
        self._check_again = False
        self.stalled: list[str] = []  # rooms behind for longer than `stall_after` (at the last look)
        self._observers: list[RoomObserver] = []
        broker.set_handlers(self.on_room_message, self.on_control_message, self.on_broker_reset)

    def start(self) -> None:
        """Start the watcher: polls the log while the broker is down, and notices stalled rooms."""
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="hub-watch")

    # -- connections ---------------------------------------------------------------------------
    def add_connection(self, conn: Connection) -> None:
        self.connections[conn.conn_id] = conn
        metrics.WS_CONNECTIONS.set(len(self.connections))

    async def remove_connection(self, conn: Connection) -> list[str]:
        """Forget a socket; returns the rooms it was in (for presence)."""
        rooms = list(conn.rooms)
        for room_id in rooms:
            await self.detach(conn, room_id)
        self.connections.pop(conn.conn_id, None)
        metrics.WS_CONNECTIONS.set(len(self.connections))
        return rooms

    def add_observer(self, observer: RoomObserver) -> None:
        self._observers.append(observer)

    def sender_tag(self, conn: Connection | None) -> str:
        """`instance/conn`, or `instance/` for a change no socket made: every envelope names the
        instance it left from (the Redis broker drops its own when they come back)."""
        return f"{self.instance_id}/{conn.conn_id}" if conn is not None else f"{self.instance_id}/"

    # -- rooms -----------------------------------------------------------------------------------
    async def attach(self, conn: Connection, room_id: str, view: View) -> None:
        """Register `conn` as pending in the room, subscribing this instance first if needed."""
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = LocalRoom(room_id)
            metrics.WS_ROOMS.set(len(self.rooms))
            try:
                await self.broker.subscribe(room_id)
                current = (await self._versions_loader([room_id])).get(room_id, 0)
            except BaseException as exc:
                if self.rooms.get(room_id) is room:
                    del self.rooms[room_id]
                    metrics.WS_ROOMS.set(len(self.rooms))
                room.ready.set_exception(exc)
                room.ready.exception()  # mark retrieved: the caller re-raises it below
                raise
            self._initialise(room, current)
        else:
            await asyncio.shield(room.ready)
        room.members[conn] = PENDING
        room.pending[conn] = []
        room.set_view(conn, view)
        conn.rooms[room_id] = view.role

    def review(self, conn: Connection, room_id: str, view: View) -> bool:
        """A member changes what it views (a GM's scene): pending again until `activate` queues the
        new scene's snapshot. False if it is not in the room."""
        room = self.rooms.get(room_id)
        if room is None or conn not in room.members:
            return False
        room.members[conn] = PENDING
        room.pending[conn] = []
        room.set_view(conn, view)
        return True

    def view_of(self, conn: Connection, room_id: str) -> View | None:
        room = self.rooms.get(room_id)
        return room.views.get(conn) if room is not None else None

    def activate(self, conn: Connection, room_id: str, cursor: int, first_frame: str) -> None:
        """Queue the join ack, then the held events newer than what the ack covered."""
        room = self.rooms.get(room_id)
        if room is None or conn not in room.members:
            return
        conn.send(first_frame)
        view = room.views[conn]
        for version, held in room.pending.pop(conn, ()):
            if version > cursor:
                conn.send(delivery.frame_of(room_id, held, view))
                cursor = version
        room.members[conn] = cursor
        room.told.discard(conn)

    async def detach(self, conn: Connection, room_id: str) -> None:
        conn.rooms.pop(room_id, None)
        room = self.rooms.get(room_id)
        if room is None:
            return
        room.members.pop(conn, None)
        room.pending.pop(conn, None)
        room.set_view(conn, None)
        room.told.discard(conn)
        if not room.members:
            del self.rooms[room_id]
            metrics.WS_ROOMS.set(len(self.rooms))
            for observer in self._observers:
                observer.dropped(room_id)
            if room.filler is not None:
                room.filler.cancel()
            # The broker sends (un)subscribe commands in call order, so a quick re-attach that
            # subscribes after this still ends subscribed.
            with contextlib.suppress(Exception):
                await self.broker.unsubscribe(room_id)

    def local_users(self, room_id: str) -> set[str]:
        room = self.rooms.get(room_id)
        return {c.user_id for c in room.members} if room else set()

    def user_sockets_in_room(self, room_id: str, user_id: str) -> int:
        room = self.rooms.get(room_id)
        return sum(1 for c in room.members if c.user_id == user_id) if room else 0

    # -- publishing ----------------------------------------------------------------------------
    async def publish(self, room_id: str, version: int, ts_ms: float, sender: Connection | None,
                      body: bytes, routing: Routing = EVERYONE) -> None:
        """A stored event (its room version): this instance's sockets now, in version order, the other
        instances through the broker. Ephemeral messages go through `relay`, which never waits."""
        room = self.rooms.get(room_id)
        if sender is not None and version and room is not None and version >= room.expected:
            # Remembered before the publish leaves: if this version is read from the log before the
            # broker brings it back (another instance's later event arrived first and the gap wait
            # ran out), the catch-up still leaves the sender out.
            if len(room.authors) >= self._reorder_limit:
                room.forget_authors()
                if len(room.authors) >= self._reorder_limit:
                    room.authors.pop(min(room.authors))
            room.authors[version] = sender.conn_id
        data = pack(version, ts_ms, self.sender_tag(sender), body, routing)
        # This instance's sockets at once, in the order of the calls; the broker carries the event to
        # the other instances only. Through Redis and back, each local delivery waited for the outbox's
        # batch, Redis and the subscriber's read: at 1,000 players on one instance that was most of the
        # delivery time. Versions still order every socket's events (a later local version waits for an
        # earlier remote one, as before).
        try:
            self.on_room_message(room_id, data)
        except Exception:  # a fault in delivery must not fail a change that is stored, nor keep it from the others
            log.exception("hub.local_delivery_failed", room_id=room_id)
        await self.broker.publish(room_id, data)

    def relay(self, room_id: str, ts_ms: float, sender: Connection | None, body: bytes,
              routing: Routing = EVERYONE) -> None:
        """An ephemeral message (a preview, a pointer): this instance's sockets now, the others
        through the broker, without waiting (`publish` with version 0, for callers that cannot await)."""
        tag = self.sender_tag(sender)
        room = self.rooms.get(room_id)
        if room is not None:
            try:
                delivery.fan_out_ephemeral(room, Envelope(0, ts_ms, tag, body, routing.audience), self.instance_id)
            except Exception:
                log.exception("hub.local_delivery_failed", room_id=room_id)
        self.broker.relay(room_id, pack(0, ts_ms, tag, body, routing))

    async def publish_control(self, message: dict[str, Any], instance_id: str | None = None) -> None:
        await self.broker.publish_control(orjson.dumps(message), instance_id)

    def on_control(self, kind: str, handler: ControlHandler) -> None:
        self._control_handlers[kind] = handler

    # -- from the broker (must not block) ------------------------------------------------------
    def on_room_message(self, room_id: str, data: bytes) -> None:
        room = self.rooms.get(room_id)
        if room is None:
            return
        try:
            env = unpack(data)
        except ValueError:
            log.warning("bad_envelope", room_id=room_id)
            return
        version = env.version
        if version == 0:
            delivery.fan_out_ephemeral(room, env, self.instance_id)
        elif version == room.expected:
            self._deliver(room, env)
            if room.buffer or room.behind_since is not None:
                self._drain(room)
        elif version > room.expected:
            self._hold(room, env)
        # else: already delivered (a duplicate, or covered by a catch-up)

    def on_control_message(self, data: bytes) -> None:
        try:
            message = orjson.loads(data)
            handler = self._control_handlers.get(message.get("kind", ""))
        except (orjson.JSONDecodeError, AttributeError):
            log.warning("bad_control_message")
            return
        if handler is None:
            return
        result = handler(message)
        if result is not None:
            self._spawn(result)

    def on_broker_reset(self) -> None:
        """The broker (re)subscribed and may have missed events: check every room against the log,
        and ask the other instances to do the same, since what this instance published while it was
        cut off reached nobody."""
        self.check_rooms()
        self._spawn(self._ask_others_to_check())

    async def _ask_others_to_check(self) -> None:
        with contextlib.suppress(Exception):
            await self.publish_control({"kind": CHECK_ROOMS, "from": self.instance_id})

    def _on_check_rooms(self, message: dict[str, Any]) -> None:
        if message.get("from") != self.instance_id:
            self.check_rooms()

    def check_rooms(self) -> None:
        """Read every local room's latest version (one statement per 500 rooms) and catch up."""
        if self._checking is not None and not self._checking.done():
            self._check_again = True  # whatever happened since the running check began
            return
        self._checking = self._spawn(self._check_rooms())

    async def _check_rooms(self) -> None:
        failures = 0
        while True:
            self._check_again = False
            ids = [room_id for room_id, room in self.rooms.items() if room.expected]
            for start in range(0, len(ids), _VERSIONS_CHUNK):
                chunk = ids[start : start + _VERSIONS_CHUNK]
                try:
                    latest = await self._versions_loader(chunk)
                except Exception as exc:
                    failures += 1
                    metrics.HUB_FILL_FAILURES.inc()
                    (log.debug if failures > 1 else log.warning)("hub.check_failed", error=repr(exc))
                    self._check_again = True  # the database is down: try again, backing off
                    await asyncio.sleep(min(2.0, 0.05 * 2**failures))
                    break
                failures = 0
                for room_id, version in latest.items():
                    room = self.rooms.get(room_id)
                    if room is not None and room.expected and version >= room.expected:
                        room.note(version)
                        self._ensure_filler(room, 0.0)
            if not self._check_again:
                return

    # -- ordering ------------------------------------------------------------------------------
    def _initialise(self, room: LocalRoom, current: int) -> None:
        room.advance(current + 1)
        room.ready.set_result(None)
        self._drain(room)

    def _hold(self, room: LocalRoom, env: Envelope) -> None:
        metrics.REORDER_BUFFERED.inc()
        room.note(env.version)
        if len(room.buffer) >= self._reorder_limit:
            metrics.REORDER_DROPPED.inc()
            # The newest goes: it stays in `goal`, so the filler reads it back from the log.
            if env.version > max(room.buffer):
                return
            room.buffer.pop(max(room.buffer))
        room.buffer[env.version] = env
        if room.expected:
            self._ensure_filler(room, self._gap_wait if self.broker.healthy else 0.0)

    def _drain(self, room: LocalRoom) -> None:
        buffer = room.buffer
        while room.expected in buffer:
            self._deliver(room, buffer.pop(room.expected))
        if room.expected > room.goal:
            room.behind_since = None
            room.told.clear()
        elif room.expected:
            self._ensure_filler(room, self._gap_wait if self.broker.healthy else 0.0)

    def _ensure_filler(self, room: LocalRoom, wait: float) -> None:
        filler = room.filler
        if filler is not None and not filler.done():
            if wait or not room.filler_waits:
                return
            filler.cancel()  # it is only waiting for the broker, and now we know better: read at once
        room.filler = self._spawn(self._catch_up(room, wait))

    async def _catch_up(self, room: LocalRoom, wait: float) -> None:
        """Deliver versions `expected..goal` of the room from the log, in batches."""
        failures = 0
        try:
            if wait:
                room.filler_waits = True
                await asyncio.sleep(wait)  # the broker may still bring a reordered event itself
                room.filler_waits = False
            while self.rooms.get(room.room_id) is room and room.expected and room.expected <= room.goal:
                first_held = min(room.buffer) if room.buffer else room.goal + 1
                if first_held == room.expected:
                    self._drain(room)
                    continue
                upto = first_held - 1
                if upto - room.expected + 1 > self._resync_after:
                    self._skip(room, upto)
                    continue
                upto = min(upto, room.expected - 1 + self._batch)
                try:
                    async with self._fill_slots:
                        rows = await self._history_loader(room.room_id, room.expected - 1, upto)
                except Exception as exc:
                    failures += 1
                    metrics.HUB_FILL_FAILURES.inc()
                    (log.debug if failures > 1 else log.warning)("hub.fill_failed", error=repr(exc))
                    await asyncio.sleep(min(2.0, 0.05 * 2**failures))
                    continue
                failures = 0
                metrics.REORDER_GAP_FILLS.inc()
                if self.rooms.get(room.room_id) is room:
                    self._deliver_rows(room, rows, upto)
                    self._drain(room)
        finally:
            if room.filler is asyncio.current_task():
                room.filler = None
                room.filler_waits = False

    def _deliver_rows(self, room: LocalRoom, rows: list[Logged], upto: int) -> None:
        batch = [row for row in rows if room.expected <= row.version <= upto]
        if not batch:
            if room.expected <= upto:
                self._skip(room, upto)  # not in the log any more (pruned): those sockets resync
            return
        # A socket that could not take this batch without overflowing is told to resync instead.
        room_for = self._send_queue * 3 // 4 - len(batch)
        lagging = {conn for conn, cursor in room.members.items()
                   if cursor != PENDING and conn.queue_depth > room_for}
        for conn in lagging - room.told:
            self._tell_resync(room, conn, upto)
        for row in batch:
            if row.version > room.expected:
                self._skip(room, row.version - 1)
            room.buffer.pop(row.version, None)
            author = room.authors.pop(row.version, None)
            sender = f"{self.instance_id}/{author}" if author is not None else ""
            self._deliver(room, Envelope(row.version, ts_of(row.body), sender, row.body.encode(), row.audience,
                                         row.variants.encode() if row.variants else b""), skip=lagging)
        if room.expected <= upto:
            self._skip(room, upto)

    def _skip(self, room: LocalRoom, upto: int) -> None:
        """Versions `expected..upto` will not be replayed here: every socket resyncs instead."""
        if upto < room.expected:
            return
        frame = resync_frame(room.room_id, upto)
        for conn, cursor in room.members.items():
            if cursor == PENDING:
                room.pending[conn].append((upto, frame))
            elif conn not in room.told:
                self._tell_resync(room, conn, upto)
        room.advance(upto + 1)

    def _tell_resync(self, room: LocalRoom, conn: Connection, upto: int) -> None:
        room.told.add(conn)
        metrics.HUB_RESYNCS.inc()
        conn.send(resync_frame(room.room_id, upto))

    def _deliver(self, room: LocalRoom, env: Envelope, skip: set[Connection] | None = None) -> None:
        if room.authors:
            room.authors.pop(env.version, None)
        delivery.deliver(room, env, self.instance_id, self._pending_limit, self._observers, skip)

    # -- the watcher -----------------------------------------------------------------------------
    async def _watch(self) -> None:
        looks = 0
        while True:
            await asyncio.sleep(self._poll_interval)
            if not self.broker.healthy and self.rooms:
                self.check_rooms()  # nothing comes from the other instances: read the log
            looks += 1
            if looks % 5 == 0:
                self._look_for_stalls()

    def _look_for_stalls(self) -> None:
        now = time.monotonic()
        stalled = [room for room in self.rooms.values()
                   if room.behind_since is not None and now - room.behind_since > self.stall_after]
        self.stalled = [room.room_id for room in stalled]
        metrics.HUB_STALLED_ROOMS.set(len(stalled))
        metrics.AUDIENCE_CACHE.set(audience.cached())
        for room in stalled:
            if room.filler is None or room.filler.done():
                self._ensure_filler(room, 0.0)  # recover by itself

    def health(self) -> dict[str, Any]:
        """For /ready: rooms that cannot make progress, and rooms catching up right now."""
        behind = sum(1 for room in self.rooms.values() if room.behind_since is not None)
        return {"stalled_rooms": len(self.stalled), "behind_rooms": behind}

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- whole-instance operations ---------------------------------------------------------------
    def broadcast(self, text: str, conns: Iterable[Connection] | None = None) -> int:
        count = 0
        for conn in list(conns if conns is not None else self.connections.values()):
            if conn.send(text):
                count += 1
        return count

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        for task in list(self._tasks):
            task.cancel()
        for room in self.rooms.values():
            if room.filler is not None:
                room.filler.cancel()


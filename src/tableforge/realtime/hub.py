"""The hub: this instance's sockets, grouped by room, fed in version order from the broker.

Room versions are taken in the database, inside the transaction that stores the change, so
two instances may publish v7 and v8 in either order. Each local room therefore delivers in
version order: an early event waits in a bounded reorder buffer; a version that does not come
within `gap_wait` is read from the stored history. A socket that is joining is "pending": its
events are held until its snapshot (or history) ack is queued, then only newer ones follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import orjson

from tableforge.observability import metrics
from tableforge.observability.logging import get_logger
from tableforge.realtime.broker import Broker
from tableforge.realtime.connection import CLOSE_SLOW_CONSUMER, Connection
from tableforge.realtime.envelope import Envelope, pack, unpack

log = get_logger(__name__)

VersionLoader = Callable[[str], Awaitable[int]]
HistoryLoader = Callable[[str, int, int], Awaitable[list[tuple[int, str]]]]
ControlHandler = Callable[[dict[str, Any]], Awaitable[None] | None]
PENDING = -1


class RoomObserver(Protocol):
    """Sees each stored room event this instance delivers, in version order (e.g. the preview
    check's token owner index, realtime/room_tokens.py). Must not block and must not raise."""

    def delivered(self, room_id: str, version: int, body: str) -> None: ...

    def dropped(self, room_id: str) -> None:
        """The room's last local socket left: its events no longer come here."""


class LocalRoom:
    __slots__ = ("buffer", "expected", "gap_task", "members", "pending", "ready", "room_id")

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.members: dict[Connection, int] = {}  # connection -> cursor (PENDING while joining)
        self.pending: dict[Connection, list[tuple[int, str]]] = {}
        self.expected = 0  # next version to deliver; 0 until the room is initialised
        self.buffer: dict[int, Envelope] = {}
        self.gap_task: asyncio.Task[None] | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class Hub:
    def __init__(self, broker: Broker, instance_id: str, *, version_loader: VersionLoader,
                 history_loader: HistoryLoader, reorder_limit: int = 1000, pending_limit: int = 1000,
                 gap_wait: float = 0.25) -> None:
        self.broker = broker
        self.instance_id = instance_id
        self.rooms: dict[str, LocalRoom] = {}
        self.connections: dict[str, Connection] = {}
        self._version_loader = version_loader
        self._history_loader = history_loader
        self._reorder_limit = reorder_limit
        self._pending_limit = pending_limit
        self._gap_wait = gap_wait
        self._control_handlers: dict[str, ControlHandler] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._observers: list[RoomObserver] = []
        broker.set_handlers(self.on_room_message, self.on_control_message, self.on_broker_reset)

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
        return f"{self.instance_id}/{conn.conn_id}" if conn is not None else ""

    # -- rooms -----------------------------------------------------------------------------------
    async def attach(self, conn: Connection, room_id: str, role: str) -> None:
        """Register `conn` as pending in the room, subscribing this instance first if needed."""
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = LocalRoom(room_id)
            metrics.WS_ROOMS.set(len(self.rooms))
            try:
                await self.broker.subscribe(room_id)
                current = await self._version_loader(room_id)
            except BaseException as exc:
                if self.rooms.get(room_id) is room:
                    del self.rooms[room_id]
                room.ready.set_exception(exc)
                room.ready.exception()  # mark retrieved: the caller re-raises it below
                raise
            self._initialise(room, current)
        else:
            await asyncio.shield(room.ready)
        room.members[conn] = PENDING
        room.pending[conn] = []
        conn.rooms[room_id] = role

    def activate(self, conn: Connection, room_id: str, cursor: int, first_frame: str) -> None:
        """Queue the join ack, then the held events newer than what the ack covered."""
        room = self.rooms.get(room_id)
        if room is None or conn not in room.members:
            return
        conn.send(first_frame)
        for version, text in room.pending.pop(conn, ()):
            if version > cursor:
                conn.send(text)
                cursor = version
        room.members[conn] = cursor

    async def detach(self, conn: Connection, room_id: str) -> None:
        conn.rooms.pop(room_id, None)
        room = self.rooms.get(room_id)
        if room is None:
            return
        room.members.pop(conn, None)
        room.pending.pop(conn, None)
        if not room.members:
            del self.rooms[room_id]
            metrics.WS_ROOMS.set(len(self.rooms))
            for observer in self._observers:
                observer.dropped(room_id)
            if room.gap_task is not None:
                room.gap_task.cancel()
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
                      body: bytes) -> None:
        await self.broker.publish(room_id, pack(version, ts_ms, self.sender_tag(sender), body))

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
        if env.version == 0:
            self._fan_out_ephemeral(room, env)
            return
        if not room.expected or env.version > room.expected:
            self._hold(room, env)
            return
        if env.version < room.expected:
            return  # already delivered (a duplicate, or covered by a gap fill)
        self._deliver(room, env)
        self._drain(room)

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
        """The broker reconnected and may have missed events: fill every room from history."""
        for room in self.rooms.values():
            if room.expected:
                self._spawn(self._fill_gap(room, wait=0.0, until_latest=True))

    # -- ordering ------------------------------------------------------------------------------
    def _initialise(self, room: LocalRoom, current: int) -> None:
        room.expected = current + 1
        for version in [v for v in room.buffer if v < room.expected]:
            del room.buffer[version]
        room.ready.set_result(None)
        self._drain(room)

    def _hold(self, room: LocalRoom, env: Envelope) -> None:
        metrics.REORDER_BUFFERED.inc()
        if len(room.buffer) >= self._reorder_limit:
            metrics.REORDER_DROPPED.inc()
            room.buffer.pop(max(room.buffer))
        room.buffer[env.version] = env
        if room.expected and (room.gap_task is None or room.gap_task.done()):
            room.gap_task = self._spawn(self._fill_gap(room, wait=self._gap_wait))

    def _drain(self, room: LocalRoom) -> None:
        buffer = room.buffer
        while room.expected in buffer:
            self._deliver(room, buffer.pop(room.expected))
        if not buffer and room.gap_task is not None and room.gap_task is not asyncio.current_task():
            room.gap_task.cancel()
            room.gap_task = None
        elif buffer and (room.gap_task is None or room.gap_task.done()):
            room.gap_task = self._spawn(self._fill_gap(room, wait=self._gap_wait))

    def _deliver(self, room: LocalRoom, env: Envelope) -> None:
        version = env.version
        room.expected = version + 1
        text = env.body.decode()
        sender = env.sender
        prefix = self.instance_id + "/"
        own_conn = sender[len(prefix):] if sender.startswith(prefix) else None
        for observer in self._observers:
            observer.delivered(room.room_id, version, text)
        sent = 0
        for conn, cursor in room.members.items():
            if cursor == PENDING:
                held = room.pending[conn]
                if len(held) >= self._pending_limit:
                    conn.close(CLOSE_SLOW_CONSUMER, "too many events while joining")
                else:
                    held.append((version, text))
            elif version > cursor and conn.conn_id != own_conn:
                conn.send(text)
                sent += 1
        if sent:
            metrics.WS_OUT_BY_KIND["event"].inc(sent)
        metrics.DELIVERY_SECONDS.observe(max(0.0, time.time() - env.ts_ms / 1000))

    def _fan_out_ephemeral(self, room: LocalRoom, env: Envelope) -> None:
        text = env.body.decode()
        prefix = self.instance_id + "/"
        own_conn = env.sender[len(prefix):] if env.sender.startswith(prefix) else None
        sent = 0
        for conn, cursor in room.members.items():
            if cursor != PENDING and conn.conn_id != own_conn and conn.send(text, ephemeral=True):
                sent += 1
        if sent:
            metrics.WS_OUT_BY_KIND["ephemeral"].inc(sent)

    async def _fill_gap(self, room: LocalRoom, *, wait: float, until_latest: bool = False) -> None:
        await asyncio.sleep(wait)
        if self.rooms.get(room.room_id) is not room or not room.expected:
            return
        if until_latest:
            upto = await self._version_loader(room.room_id)
        elif room.buffer:
            upto = min(room.buffer) - 1
        else:
            return
        if upto >= room.expected:
            rows = await self._history_loader(room.room_id, room.expected - 1, upto)
            metrics.REORDER_GAP_FILLS.inc()
            now_ms = time.time() * 1000
            for version, body in rows:
                if version >= room.expected:
                    if version > room.expected:
                        room.expected = version  # lost for good: clients see the gap and resync
                    self._deliver(room, Envelope(version, now_ms, "", body.encode()))
            if room.buffer and room.expected <= min(room.buffer) - 1 and not until_latest:
                room.expected = min(room.buffer)
        room.gap_task = None
        self._drain(room)

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
        for task in list(self._tasks):
            task.cancel()
        for room in self.rooms.values():
            if room.gap_task is not None:
                room.gap_task.cancel()

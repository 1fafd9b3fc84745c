"""The Broker: how events reach every instance that has sockets in a room.

Two backends behind one interface: `MemoryBroker` (embedded mode, one process) and the Redis
broker (scale-out). Handlers are plain callables that must not block: the hub only enqueues.
Every publish, the origin's included, comes back through the handler, so each instance sees
one order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

RoomHandler = Callable[[str, bytes], None]
ControlHandler = Callable[[bytes], None]


class Broker(ABC):
    """Room channels (one per room, subscribed while local sockets are in it) and control messages."""

    def __init__(self) -> None:
        self._on_room: RoomHandler = lambda _room, _data: None
        self._on_control: ControlHandler = lambda _data: None
        self._on_reset: Callable[[], None] = lambda: None

    def set_handlers(self, on_room: RoomHandler, on_control: ControlHandler,
                     on_reset: Callable[[], None] | None = None) -> None:
        """`on_reset` runs after a reconnect: messages may have been missed, so rooms resync."""
        self._on_room = on_room
        self._on_control = on_control
        if on_reset is not None:
            self._on_reset = on_reset

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def subscribe(self, room_id: str) -> None: ...

    @abstractmethod
    async def unsubscribe(self, room_id: str) -> None: ...

    @abstractmethod
    async def publish(self, room_id: str, data: bytes) -> None: ...

    @abstractmethod
    async def publish_control(self, data: bytes, instance_id: str | None = None) -> None:
        """To every instance (None) or to one instance's own channel."""

    @property
    def healthy(self) -> bool:
        return True

    def stats(self) -> dict[str, Any]:
        """For /ready, the heartbeat and the admin stats (empty: nothing worth reporting)."""
        return {}


class MemoryBroker(Broker):
    """Embedded mode: delivery is a direct call, in publish order."""

    def __init__(self) -> None:
        super().__init__()
        self._rooms: set[str] = set()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._rooms.clear()

    async def subscribe(self, room_id: str) -> None:
        self._rooms.add(room_id)

    async def unsubscribe(self, room_id: str) -> None:
        self._rooms.discard(room_id)

    async def publish(self, room_id: str, data: bytes) -> None:
        if room_id in self._rooms:
            self._on_room(room_id, data)

    async def publish_control(self, data: bytes, instance_id: str | None = None) -> None:
        self._on_control(data)

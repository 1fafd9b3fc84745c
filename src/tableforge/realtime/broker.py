"""The Broker: how events reach every instance that has sockets in a room.

Two backends behind one interface: `MemoryBroker` (embedded mode, one process) and the Redis
broker (scale-out). Handlers are plain callables that must not block: the hub only enqueues.
A room message reaches the *other* instances subscribed to the room, never the publisher's own
handler: the hub delivers to its own sockets when it publishes. Stored events carry their room
version, so every socket still receives them in one order, wherever they were published.
Control messages reach their target instances, the publisher's included.
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
    def relay(self, room_id: str, data: bytes) -> None:
        """An ephemeral room message (version 0) to the other instances, without waiting: dropped
        rather than queued when the broker is behind (the protocol allows it)."""

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
    """Embedded mode: one instance, so a room message has nobody else to reach; control messages
    are a direct call."""

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def subscribe(self, room_id: str) -> None:
        return None

    async def unsubscribe(self, room_id: str) -> None:
        return None

    async def publish(self, room_id: str, data: bytes) -> None:
        return None

    def relay(self, room_id: str, data: bytes) -> None:
        return None

    async def publish_control(self, data: bytes, instance_id: str | None = None) -> None:
        self._on_control(data)

"""Who is online in which room: the first socket of a user in a room makes them online, the last
one leaving makes them offline. Memory here; the Redis one spans instances and expires with them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

# Announces [(room_id, user_id), ...] whose instance died (player.left).
OfflineHandler = Callable[[list[tuple[str, str]]], Awaitable[Any]]


class Presence(ABC):
    @abstractmethod
    async def add(self, room_id: str, user_id: str, conn_key: str) -> bool:
        """Record a socket; True if it is the user's first in the room (they just came online)."""

    @abstractmethod
    async def remove(self, room_id: str, user_id: str, conn_key: str) -> bool:
        """Forget a socket; True if it was the user's last in the room (they just went offline)."""

    @abstractmethod
    async def online(self, room_id: str) -> set[str]:
        """User ids with at least one socket in the room."""

    @abstractmethod
    async def count(self, room_id: str) -> int:
        """Sockets in the room."""

    @abstractmethod
    async def user_connected(self, user_id: str) -> None:
        """A socket of the user opened on this instance (for send-to-user)."""

    @abstractmethod
    async def user_disconnected(self, user_id: str) -> None: ...

    @abstractmethod
    async def user_instances(self, user_id: str) -> set[str]:
        """Instances holding a socket of the user: send there, not to every instance."""

    async def close(self) -> list[tuple[str, str]]:
        """Clean shutdown; returns (room_id, user_id) pairs that went offline with it."""
        return []

    def set_offline_handler(self, handler: OfflineHandler) -> None:
        """Who announces users whose instance died. One process: no other instance can die."""
        return None

    async def maintain(self, revived: bool = False) -> list[tuple[str, str]]:
        """Heartbeat work (refresh our entries, prune dead instances); returns who went offline."""
        return []


class MemoryPresence(Presence):
    """One process: the only instance is this one."""

    def __init__(self, instance_id: str = "local") -> None:
        self.instance_id = instance_id
        self._rooms: dict[str, dict[str, set[str]]] = defaultdict(dict)
        self._users: dict[str, int] = {}

    async def add(self, room_id: str, user_id: str, conn_key: str) -> bool:
        users = self._rooms[room_id]
        conns = users.setdefault(user_id, set())
        first = not conns
        conns.add(conn_key)
        return first

    async def remove(self, room_id: str, user_id: str, conn_key: str) -> bool:
        users = self._rooms.get(room_id)
        if users is None or user_id not in users:
            return False
        conns = users[user_id]
        conns.discard(conn_key)
        if conns:
            return False
        del users[user_id]
        if not users:
            del self._rooms[room_id]
        return True

    async def online(self, room_id: str) -> set[str]:
        return set(self._rooms.get(room_id, {}))

    async def count(self, room_id: str) -> int:
        return sum(len(c) for c in self._rooms.get(room_id, {}).values())

    async def user_connected(self, user_id: str) -> None:
        self._users[user_id] = self._users.get(user_id, 0) + 1

    async def user_disconnected(self, user_id: str) -> None:
        left = self._users.get(user_id, 0) - 1
        if left > 0:
            self._users[user_id] = left
        else:
            self._users.pop(user_id, None)

    async def user_instances(self, user_id: str) -> set[str]:
        return {self.instance_id} if user_id in self._users else set()

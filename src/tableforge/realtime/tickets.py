"""Single-use WebSocket tickets: a short-lived secret a browser puts in the `/ws` URL instead of
its 30-day session token. A ticket names the session it was issued for; redeeming it removes it
(single use), on any instance: Redis GETDEL in scale-out mode, a bounded dict in embedded mode.
Only a hash of the ticket is stored, so a dump of Redis does not hold usable tickets."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from cachetools import TTLCache

from tableforge.observability.auth_metrics import WS_TICKETS_HELD

if TYPE_CHECKING:
    from redis.asyncio import Redis

MEMORY_MAX = 10_000  # tickets outstanding at once in embedded mode; the oldest go first beyond it


def ticket_key(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


class TicketStore(ABC):
    @abstractmethod
    async def put(self, ticket: str, session_id: str) -> None: ...

    @abstractmethod
    async def take(self, ticket: str) -> str | None:
        """The session id the ticket was issued for, once; None if unknown, used or expired."""


class MemoryTickets(TicketStore):
    def __init__(self, ttl: float, maxsize: int = MEMORY_MAX) -> None:
        self._held: TTLCache[str, str] = TTLCache(maxsize, ttl)

    async def put(self, ticket: str, session_id: str) -> None:
        self._held[ticket_key(ticket)] = session_id
        WS_TICKETS_HELD.set(len(self._held))

    async def take(self, ticket: str) -> str | None:
        session_id = self._held.pop(ticket_key(ticket), None)
        WS_TICKETS_HELD.set(len(self._held))
        return session_id


class RedisTickets(TicketStore):
    def __init__(self, redis: Redis, ttl: float, prefix: str) -> None:
        self._redis = redis
        self._ttl_ms = max(1, int(ttl * 1000))
        self._prefix = f"{prefix}ws-ticket:"

    async def put(self, ticket: str, session_id: str) -> None:
        await self._redis.set(self._prefix + ticket_key(ticket), session_id, px=self._ttl_ms)

    async def take(self, ticket: str) -> str | None:
        value = await self._redis.getdel(self._prefix + ticket_key(ticket))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

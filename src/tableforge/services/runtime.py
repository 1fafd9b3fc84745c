"""The running app's parts, as the services see them: interfaces only.

Which implementation stands behind each (SQLite or PostgreSQL, memory or Redis) is decided once,
in `tableforge.wiring.backends`, from the configured URLs; nothing here or in the services asks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tableforge import tasks
from tableforge.cache import Cache
from tableforge.config import Settings
from tableforge.db.engine import Database
from tableforge.db.event_log import EventLog
from tableforge.realtime.broker import Broker
from tableforge.realtime.drain import DrainState
from tableforge.realtime.hub import Hub
from tableforge.realtime.presence import Presence
from tableforge.realtime.revocation import Revocations
from tableforge.realtime.room_tokens import RoomTokens
from tableforge.realtime.tickets import TicketStore
from tableforge.services.departures import Departures
from tableforge.services.guards import Guards
from tableforge.services.maintenance.state import MaintenanceState
from tableforge.services.snapshots import SnapshotReader

if TYPE_CHECKING:
    from tableforge.realtime.registry import InstanceRegistry


@dataclass
class Runtime:
    settings: Settings
    db: Database
    events: EventLog  # every stored room change: `append`, then publish what it returns
    snapshots: SnapshotReader  # the HTTP snapshot with its membership check
    broker: Broker
    hub: Hub
    presence: Presence
    cache: Cache
    tickets: TicketStore  # single-use WebSocket tickets (Redis in scale-out, in-process embedded)
    revocations: Revocations  # closes this instance's sockets of revoked sessions
    guards: Guards  # login/invite guess limits, socket caps, image decode slots
    # Token owners of the local rooms, fed by the hub: checks preview moves without a query per frame.
    room_tokens: RoomTokens
    registry: InstanceRegistry | None = None  # scale-out only
    maintenance: MaintenanceState | None = None  # the maintenance lease and scheduler (services/maintenance)
    # Backend clients that only the wiring knows about (the presence/registry Redis client), closed last.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    started_at: float = 0.0
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    # Admin stats requests waiting for other instances' replies: request id -> replies.
    stats_waiters: dict[str, asyncio.Queue[dict[str, Any]]] = field(default_factory=dict)
    # Draining (services/balance.py): /ready answers 503 and new sockets are refused while it lasts.
    drain: DrainState = field(default_factory=DrainState)
    # Dropped sockets whose presence lasts a little longer (services/departures.py).
    departures: Departures = field(default_factory=Departures)

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def close(self) -> None:
        await tasks.stop(list(self.background))
        await self.hub.close()
        await self.broker.close()
        await self.cache.close()
        for close in self.closers:
            await close()
        await self.db.dispose()

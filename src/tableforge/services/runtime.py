"""The running app's parts, built once at start-up from the settings (the composition root).

The mode is decided here and nowhere else: which broker, which cache tiers, which database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from tableforge.cache import Cache, build_cache
from tableforge.config import Settings
from tableforge.db.engine import Database
from tableforge.realtime.broker import Broker, MemoryBroker
from tableforge.realtime.hub import Hub
from tableforge.realtime.presence import MemoryPresence, Presence
from tableforge.services import events


@dataclass
class Runtime:
    settings: Settings
    db: Database
    broker: Broker
    hub: Hub
    presence: Presence
    cache: Cache
    started_at: float = 0.0
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.hub.close()
        await self.broker.close()
        await self.cache.close()
        await self.db.dispose()


def build_runtime(settings: Settings) -> Runtime:
    db = Database(settings)
    broker: Broker = MemoryBroker()
    presence: Presence = MemoryPresence()

    async def load_version(room_id: str) -> int:
        async with db.read() as conn:
            return await events.current_version(conn, room_id)

    async def load_history(room_id: str, after: int, upto: int) -> list[tuple[int, str]]:
        async with db.read() as conn:
            return await events.history(conn, room_id, after, upto)

    hub = Hub(broker, settings.instance_id, version_loader=load_version, history_loader=load_history)
    return Runtime(settings=settings, db=db, broker=broker, hub=hub, presence=presence, cache=build_cache(settings))


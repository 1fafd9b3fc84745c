"""Start-up and shutdown of the runtime: migrate, seed, start the broker; on stop, say goodbye to
every socket (1012: reconnect elsewhere) and let pending work finish."""

from __future__ import annotations

import asyncio
import time

from tableforge.db import migrate
from tableforge.domain import events as ev
from tableforge.realtime import protocol
from tableforge.services import catalog_seed, play
from tableforge.services.runtime import Runtime

CLOSE_SERVICE_RESTART = 1012


async def start(rt: Runtime) -> None:
    rt.started_at = time.time()
    await rt.cache.start()
    if rt.settings.auto_migrate:
        await migrate.upgrade(rt.db)
    if rt.settings.seed_catalog:
        await catalog_seed.seed(rt)
    if not rt.settings.scale_out:
        await play.reset_presence(rt)
    _register_control_handlers(rt)
    await rt.broker.start()


def _register_control_handlers(rt: Runtime) -> None:
    hub = rt.hub

    def room_closed(message: dict[str, object]) -> None:
        room_id = str(message.get("room_id"))
        room = hub.rooms.get(room_id)
        if room is None:
            return
        text = protocol.encode({"type": ev.ROOM_CLOSED, "room_id": room_id})
        for conn in list(room.members):
            conn.send(text)
            rt.spawn(play.leave(rt, conn, room_id, announce=False))

    def broadcast(message: dict[str, object]) -> None:
        hub.broadcast(protocol.encode({"type": ev.SYSTEM_BROADCAST, "message": message.get("message"),
                                       "ts": time.time() * 1000}))

    hub.on_control(ev.ROOM_CLOSED, room_closed)
    hub.on_control(ev.SYSTEM_BROADCAST, broadcast)


async def stop(rt: Runtime) -> None:
    conns = list(rt.hub.connections.values())
    await asyncio.gather(*(c.drain(1.0) for c in conns), return_exceptions=True)
    for conn in conns:
        conn.close(CLOSE_SERVICE_RESTART, "server restarting")
    for conn in conns:
        await play.disconnect(rt, conn)
    await rt.close()

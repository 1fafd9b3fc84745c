"""Start-up and shutdown of the runtime: migrate, seed, start the broker; on stop, say goodbye to
every socket (1012: reconnect elsewhere) and let pending work finish. Also what each control
message does here (room closed, broadcast, send-to-user, admin commands, stats)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tableforge.db import migrate
from tableforge.domain import events as ev
from tableforge.observability import metrics
from tableforge.realtime import protocol
from tableforge.services import admin, catalog_seed, draining, play, rebalance
from tableforge.services.maintenance import scheduler as maintenance
from tableforge.services.runtime import Runtime
from tableforge.wiring import sigterm, tuning

CLOSE_SERVICE_RESTART = 1012
CLOSE_GOING_AWAY = 1001


async def start(rt: Runtime) -> None:
    rt.started_at = time.time()
    tuning.return_large_frees_to_the_os()
    metrics.track_gc_pauses()
    rt.spawn(metrics.monitor_loop_lag())
    await rt.cache.start()
    if rt.settings.auto_migrate:
        await migrate.upgrade(rt.db)
    if rt.settings.seed_catalog:
        await catalog_seed.seed(rt)
    if not rt.settings.scale_out:
        await play.reset_presence(rt)
    _register_control_handlers(rt)
    draining.register(rt)  # drain / resume / shed commands (docs/load-balancing.md)
    rt.revocations.register()
    rt.hub.start()
    await rt.broker.start()
    # Users whose instance died are announced (player.left) by whichever instance prunes them.
    rt.presence.set_offline_handler(lambda gone: play.announce_offline(rt, gone))
    if rt.registry is not None:
        rt.registry.add_hook(rt.presence.maintain)
        registry = rt.registry

        async def count_instances(_revived: bool) -> None:
            metrics.LIVE_INSTANCES.set(len(await registry.live_instances()))

        rt.registry.add_hook(count_instances)
        await rt.registry.start()
        rt.spawn(rebalance.policy_loop(rt))  # returns at once unless the policy is on
    restore_sigterm = sigterm.install(rt)  # scale-out: SIGTERM drains first

    async def put_back_sigterm() -> None:
        restore_sigterm()

    rt.closers.append(put_back_sigterm)
    tuning.freeze_start_up_objects()
    maintenance.start(rt)  # last: the first job may read the seeded catalog


def _register_control_handlers(rt: Runtime) -> None:
    hub = rt.hub

    def room_closed(message: dict[str, Any]) -> None:
        room_id = str(message.get("room_id"))
        room = hub.rooms.get(room_id)
        if room is None:
            return
        text = protocol.encode({"type": ev.ROOM_CLOSED, "room_id": room_id})
        for conn in list(room.members):
            conn.send(text)
            rt.spawn(play.leave(rt, conn, room_id, announce=False))

    def broadcast(message: dict[str, Any]) -> None:
        metrics.BROADCASTS.inc()
        hub.broadcast(protocol.encode({"type": ev.SYSTEM_BROADCAST, "message": message.get("message"),
                                       "ts": time.time() * 1000}))

    def user_send(message: dict[str, Any]) -> None:
        text = protocol.encode(message.get("frame"))
        user_id = message.get("user_id")
        hub.broadcast(text, [c for c in hub.connections.values() if c.user_id == user_id])

    def close_connections(_message: dict[str, Any]) -> None:
        for conn in list(hub.connections.values()):
            conn.close(CLOSE_GOING_AWAY, "closed by an administrator")

    async def stats_request(message: dict[str, Any]) -> None:
        reply = {"kind": "instance.stats.reply", "request_id": message.get("request_id"),
                 "stats": admin.this_instance(rt)}
        await hub.publish_control(reply, str(message.get("reply_to")))

    def stats_reply(message: dict[str, Any]) -> None:
        waiter = rt.stats_waiters.get(str(message.get("request_id")))
        stats = message.get("stats")
        if waiter is not None and isinstance(stats, dict) and not waiter.full():
            waiter.put_nowait(stats)

    hub.on_control(ev.ROOM_CLOSED, room_closed)
    hub.on_control(ev.SYSTEM_BROADCAST, broadcast)
    hub.on_control("user.send", user_send)
    hub.on_control("instance.close_connections", close_connections)
    hub.on_control("instance.stats.request", stats_request)
    hub.on_control("instance.stats.reply", stats_reply)


async def stop(rt: Runtime) -> None:
    await maintenance.stop(rt)  # first: no job starts while the sockets close; the lease goes to another
    conns = list(rt.hub.connections.values())
    await asyncio.gather(*(c.drain(1.0) for c in conns), return_exceptions=True)
    for conn in conns:
        conn.close(CLOSE_SERVICE_RESTART, "server restarting")
    for conn in conns:
        await play.disconnect(rt, conn)
    await play.depart_all(rt)
    await play.announce_offline(rt, await rt.presence.close())
    if rt.registry is not None:
        await rt.registry.close()
    await rt.close()

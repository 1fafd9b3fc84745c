"""Operator use cases that span instances: the registry, member counts, broadcast, per-instance
commands and stats gathered from every instance, and messages to one user wherever they are."""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import time
from typing import TYPE_CHECKING, Any

from tableforge.domain import events as ev
from tableforge.domain.errors import NotFound
from tableforge.realtime.broker import Broker
from tableforge.realtime.hub import Hub
from tableforge.services.runtime import Runtime

if TYPE_CHECKING:
    import psutil

STATS_TIMEOUT = 1.0


@functools.cache
def _process() -> psutil.Process:
    """psutil is loaded by the first stats request, not at start-up (in scale-out the instance
    registry loads it anyway; an embedded server otherwise never needs it)."""
    import psutil

    return psutil.Process(os.getpid())


def this_instance(rt: Runtime) -> dict[str, Any]:
    if rt.registry is not None:
        return rt.registry.payload()
    now = time.time()
    return {"instance_id": rt.settings.instance_id, "pid": os.getpid(), **local_stats(rt.hub, rt.broker),
            "memory_rss": _process().memory_info().rss, "uptime": round(now - rt.started_at, 3),
            "last_heartbeat": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "drain": rt.drain.report()}


async def instances(rt: Runtime) -> list[dict[str, Any]]:
    if rt.registry is None:
        return [this_instance(rt)]
    return await rt.registry.live_instances()


async def room_members(rt: Runtime, room_id: str) -> dict[str, Any]:
    online = sorted(await rt.presence.online(room_id))
    return {"room_id": room_id, "connections": await rt.presence.count(room_id), "online_users": online,
            "members": len(online)}


async def broadcast(rt: Runtime, message: str) -> None:
    await rt.hub.publish_control({"kind": ev.SYSTEM_BROADCAST, "message": message})


async def close_connections(rt: Runtime, instance_id: str) -> None:
    if instance_id not in {i["instance_id"] for i in await instances(rt)}:
        raise NotFound("no live instance has that id", code="instance_not_found")
    await rt.hub.publish_control({"kind": "instance.close_connections"}, instance_id)


async def gather_stats(rt: Runtime) -> list[dict[str, Any]]:
    """Ask every instance over its control channel; wait up to a second; instances that did not
    answer in time are listed from their last heartbeat, marked `stale`."""
    request_id = secrets.token_hex(8)
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
    rt.stats_waiters[request_id] = replies
    try:
        live = {i["instance_id"]: i for i in await instances(rt)}
        await rt.hub.publish_control({"kind": "instance.stats.request", "request_id": request_id,
                                      "reply_to": rt.settings.instance_id})
        got: dict[str, dict[str, Any]] = {}
        deadline = asyncio.get_running_loop().time() + STATS_TIMEOUT
        while set(live) - set(got):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            try:
                reply = await asyncio.wait_for(replies.get(), left)
            except TimeoutError:
                break
            got[reply["instance_id"]] = reply | {"stale": False}
        for instance_id, beat in live.items():
            got.setdefault(instance_id, beat | {"stale": True})
        return sorted(got.values(), key=lambda i: str(i["instance_id"]))
    finally:
        rt.stats_waiters.pop(request_id, None)


async def send_to_user(rt: Runtime, user_id: str, frame: dict[str, Any]) -> int:
    """Deliver a frame to every socket of one user, on the instances that hold them only."""
    targets = await rt.presence.user_instances(user_id)
    for instance_id in targets:
        await rt.hub.publish_control({"kind": "user.send", "user_id": user_id, "frame": frame}, instance_id)
    return len(targets)


def local_stats(hub: Hub, broker: Broker) -> dict[str, Any]:
    """What this instance reports in its heartbeat and to `GET /api/admin/stats`."""
    stats: dict[str, Any] = {"connections": len(hub.connections), "rooms": len(hub.rooms)}
    broker_stats = broker.stats()
    if broker_stats:
        stats["broker"] = broker_stats
    return stats

"""Draining this instance, or shedding some of its sockets, and the commands that ask for either.

A drain (SIGTERM in scale-out mode, or `POST /api/admin/instances/{id}/drain` reaching the instance
over its control channel) makes `/ready` answer 503 and refuses new sockets at once; after the notice
(`TABLEFORGE_DRAIN_NOTICE_SECONDS`, for the balancer's health checks) it closes the sockets with 1012
evenly over `TABLEFORGE_DRAIN_SECONDS`, a room's sockets one after another, each politely (a message
being handled is answered first). The instance then stays `drained` (still answering HTTP, /ready 503)
until it stops or an administrator resumes it.

A shed (rebalancing, services/rebalance.py) closes `count` sockets the same way, without refusing new
ones: their clients reconnect through the balancer, which sends them to a less busy instance.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

from tableforge.domain.errors import NotFound
from tableforge.observability import balance_metrics as bm
from tableforge.observability.logging import get_logger
from tableforge.realtime.connection import Connection
from tableforge.realtime.drain import close_gradually, room_order
from tableforge.services import admin
from tableforge.services.runtime import Runtime

log = get_logger(__name__)

DRAIN: Final = "instance.drain"
RESUME: Final = "instance.resume"
SHED: Final = "instance.shed"
REASON_DRAIN: Final = "server draining"
REASON_SHED: Final = "rebalancing"
SETTLE_SECONDS: Final = 15.0  # after the last close: sockets finish answering their last message


def _set_phase(rt: Runtime) -> None:
    bm.DRAIN_STATE.set(bm.PHASES[rt.drain.phase])


def begin(rt: Runtime, cause: str, window: float | None = None, notice: float | None = None) -> dict[str, Any]:
    """Start draining this instance (once: a drain under way is left as it is). Returns its report."""
    d = rt.drain
    if d.phase != "serving":
        return d.report()
    window = rt.settings.drain_seconds if window is None else window
    notice = rt.settings.drain_notice_seconds if notice is None else notice
    _cancel_shed(rt)
    d.begin(cause, window, notice)
    _set_phase(rt)
    bm.DRAINS_BY_CAUSE[cause].inc()
    log.info("drain.begin", cause=cause, window_s=window, notice_s=notice, sockets=len(rt.hub.connections))
    d.task = asyncio.ensure_future(_drain(rt, window, notice))
    rt.background.add(d.task)
    d.task.add_done_callback(rt.background.discard)
    return d.report()


async def _drain(rt: Runtime, window: float, notice: float) -> None:
    d = rt.drain
    if notice > 0:
        await asyncio.sleep(notice)
    hub = rt.hub
    d.to_close = len(hub.connections)
    bm.DRAIN_PENDING.set(d.to_close)

    closed: list[Connection] = []

    def closed_one(conn: Connection) -> None:
        closed.append(conn)
        d.closed += 1
        bm.DRAIN_PENDING.dec()
        bm.SOCKETS_MOVED_BY_WHY["drain"].inc()

    await close_gradually(lambda: room_order(list(hub.connections.values())), d.to_close, window, REASON_DRAIN,
                          on_close=closed_one)
    # The last ones may still be answering a message (they leave the hub when they are done), and each
    # close frame must be handed over with the answers queued before it: a SIGTERM drain stops the
    # server next, which would cut off whatever is still on its way.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SETTLE_SECONDS):
            while hub.connections:  # noqa: ASYNC110 - the hub has no "empty" event; once per drain
                await asyncio.sleep(0.05)
            await asyncio.gather(*(conn.close_sent() for conn in closed))
    bm.DRAIN_PENDING.set(0)
    d.phase = "drained"
    _set_phase(rt)
    log.info("drain.done", closed=d.closed, left=len(hub.connections))


async def wait_drained(rt: Runtime) -> None:
    task = rt.drain.task
    if task is not None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)


def resume(rt: Runtime) -> dict[str, Any]:
    """Serve again: /ready 200 and sockets accepted (the ones already closed stay where they went)."""
    d = rt.drain
    if d.task is not None and not d.task.done():
        d.task.cancel()
    d.task = None
    if d.phase != "serving":
        log.info("drain.resumed", closed=d.closed)
    d.reset()
    bm.DRAIN_PENDING.set(0)
    _set_phase(rt)
    return d.report()


def shed(rt: Runtime, count: int, window: float, origin: str) -> int:
    """Close `count` of this instance's sockets over `window` (a shed under way is replaced).
    Returns how many it will close (none while draining: they are all leaving anyway)."""
    if rt.drain.refusing or count <= 0:
        return 0
    _cancel_shed(rt)
    hub = rt.hub
    count = min(count, len(hub.connections))
    if count == 0:
        return 0
    keep = len(hub.connections) - count
    bm.SHEDS_BY_ORIGIN[origin].inc()
    bm.DRAIN_PENDING.set(count)
    log.info("rebalance.shed", origin=origin, count=count, window_s=window, keep=keep)

    def closed_one(_conn: Connection) -> None:
        bm.DRAIN_PENDING.dec()
        bm.SOCKETS_MOVED_BY_WHY["rebalance"].inc()

    async def run() -> None:
        try:
            await close_gradually(lambda: room_order(list(hub.connections.values())), count, window, REASON_SHED,
                                  keep=keep, on_close=closed_one)
        finally:
            if not rt.drain.refusing:
                bm.DRAIN_PENDING.set(0)

    task = rt.drain.shed_task = asyncio.ensure_future(run())
    rt.background.add(task)
    task.add_done_callback(rt.background.discard)
    return count


def _cancel_shed(rt: Runtime) -> None:
    task = rt.drain.shed_task
    if task is not None and not task.done():
        task.cancel()
    rt.drain.shed_task = None


# -- the administrator's commands, for any instance --------------------------------------------------
async def _live(rt: Runtime, instance_id: str) -> None:
    if instance_id not in {i["instance_id"] for i in await admin.instances(rt)}:
        raise NotFound("no live instance has that id", code="instance_not_found")


async def drain_instance(rt: Runtime, instance_id: str, window: float | None, notice: float | None
                         ) -> dict[str, Any]:
    await _live(rt, instance_id)
    window = rt.settings.drain_seconds if window is None else window
    notice = rt.settings.drain_notice_seconds if notice is None else notice
    await rt.hub.publish_control({"kind": DRAIN, "window": window, "notice": notice}, instance_id)
    return {"instance_id": instance_id, "draining": True, "window_seconds": window, "notice_seconds": notice}


async def resume_instance(rt: Runtime, instance_id: str) -> dict[str, Any]:
    await _live(rt, instance_id)
    await rt.hub.publish_control({"kind": RESUME}, instance_id)
    return {"instance_id": instance_id, "draining": False}


def register(rt: Runtime) -> None:
    """The control messages above, the drain state in every heartbeat, and the metric's first value."""
    def on_drain(message: dict[str, Any]) -> None:
        begin(rt, "admin", _seconds(message.get("window")), _seconds(message.get("notice")))

    def on_resume(_message: dict[str, Any]) -> None:
        resume(rt)

    def on_shed(message: dict[str, Any]) -> None:
        count, window = message.get("count"), _seconds(message.get("window"))
        if isinstance(count, int) and window is not None:
            shed(rt, count, window, str(message.get("origin") or "admin"))

    rt.hub.on_control(DRAIN, on_drain)
    rt.hub.on_control(RESUME, on_resume)
    rt.hub.on_control(SHED, on_shed)
    if rt.registry is not None:
        rt.registry.add_stats(lambda: {"drain": rt.drain.report()})
    _set_phase(rt)


def _seconds(value: Any) -> float | None:
    """A window from a control message: a number within the settings' bounds, else the default."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        return None
    return float(value)

"""Rebalancing: when sockets are skewed across instances, the busiest shed some, gradually.

Sockets stay where they first landed: after a rolling restart the instance that came back last holds
almost none, and a least-connections balancer only evens out new arrivals. The registry knows every
instance's count, so the busiest can be asked to close (1012) their excess over the mean, paced over
`TABLEFORGE_REBALANCE_SECONDS`; their clients reconnect through the balancer, which sends them to the
least busy instance.

- `POST /api/admin/rebalance` (or `tableforge admin rebalance`): one instance gathers everyone's counts
  (`admin.gather_stats`), plans, and sends each busy instance a shed over its control channel.
- The policy (`TABLEFORGE_REBALANCE_INTERVAL_SECONDS` > 0, off by default): every interval, each
  instance compares its own count with the mean of the registry's heartbeats and sheds its own excess.
  Each decides only for itself, so no leader is needed and no instance is shed twice for one skew.

An instance is busy above mean x (1 + tolerance) and at least `min_sockets` over the mean; it sheds down
to the mean (rounded up). Draining instances are left out: their sockets are all leaving anyway.
Under room affinity shedding helps little (the balancer hashes a room's sockets back to the same
instance); docs/load-balancing.md says what to do there instead.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from typing import Any

from tableforge.observability.logging import get_logger
from tableforge.services import admin, draining
from tableforge.services.runtime import Runtime

log = get_logger(__name__)


def shed_plan(connections: Mapping[str, int], tolerance: float, min_sockets: int) -> dict[str, int]:
    """instance id -> sockets to shed (only the busy ones appear)."""
    if len(connections) < 2:
        return {}
    mean = sum(connections.values()) / len(connections)
    floor = math.ceil(mean)
    return {instance: count - floor for instance, count in connections.items()
            if count > mean * (1 + tolerance) and count - floor >= min_sockets}


def _draining(instance: Mapping[str, Any]) -> bool:
    drain = instance.get("drain")
    return isinstance(drain, dict) and drain.get("state") not in (None, "serving")


async def rebalance(rt: Runtime, tolerance: float | None = None, min_sockets: int | None = None,
                    window: float | None = None) -> dict[str, Any]:
    """Plan from every instance's current count and ask the busy ones to shed. What was asked, per instance."""
    s = rt.settings
    tolerance = s.rebalance_tolerance if tolerance is None else tolerance
    min_sockets = s.rebalance_min_sockets if min_sockets is None else min_sockets
    window = s.rebalance_seconds if window is None else window
    instances = await admin.gather_stats(rt)
    counts = {str(i["instance_id"]): int(i.get("connections") or 0) for i in instances if not _draining(i)}
    plan = shed_plan(counts, tolerance, min_sockets)
    for instance_id, count in plan.items():
        await rt.hub.publish_control({"kind": draining.SHED, "count": count, "window": window, "origin": "admin"},
                                     instance_id)
    if plan:
        log.info("rebalance.requested", instances=len(counts), shed=sum(plan.values()))
    mean = sum(counts.values()) / len(counts) if counts else 0.0
    return {
        "instances": [{"instance_id": str(i["instance_id"]), "connections": int(i.get("connections") or 0),
                       "draining": _draining(i), "shed": plan.get(str(i["instance_id"]), 0)} for i in instances],
        "mean": round(mean, 2), "shed": sum(plan.values()), "window_seconds": window,
        "tolerance": tolerance, "min_sockets": min_sockets,
    }


async def policy_loop(rt: Runtime) -> None:
    """The optional policy: this instance sheds its own excess, then waits for the counts to settle
    (its shed window plus two heartbeats) before it looks again."""
    s = rt.settings
    registry = rt.registry
    if registry is None or s.rebalance_interval_seconds <= 0:
        return
    quiet_until = 0.0
    while True:
        await asyncio.sleep(s.rebalance_interval_seconds)
        if rt.drain.refusing or time.monotonic() < quiet_until:
            continue
        try:
            live = await registry.live_instances()
        except Exception:
            log.warning("rebalance.policy_no_registry", exc_info=True)
            continue
        counts = {str(i.get("instance_id")): int(i.get("connections") or 0) for i in live if not _draining(i)}
        me = rt.settings.instance_id
        if me not in counts:
            continue
        counts[me] = len(rt.hub.connections)  # ours is exact; the others are at most a heartbeat old
        excess = shed_plan(counts, s.rebalance_tolerance, s.rebalance_min_sockets).get(me, 0)
        if excess and draining.shed(rt, excess, s.rebalance_seconds, "policy"):
            quiet_until = time.monotonic() + s.rebalance_seconds + 2 * s.instance_heartbeat_seconds

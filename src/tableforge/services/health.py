"""Readiness: each dependency's state. `down` (503) when the database is unreachable; `degraded`
(still 200) when only Redis is, because players on one instance can still play (the cache then
falls back to the database: `checks.cache`), or when some rooms cannot keep up with the event log
(`checks.rooms`: the hub restarts their catch-up by itself, and the state clears when they are current).
`draining` (503) while this instance drains (services/draining.py), with `checks.drain`."""

from __future__ import annotations

import asyncio
from typing import Any

from tableforge.domain.errors import Unavailable
from tableforge.services.runtime import Runtime


async def readiness(rt: Runtime) -> dict[str, Any]:
    if rt.drain.phase != "serving":
        # Draining: the balancer must send nothing new here, whatever the dependencies say. Answered
        # without asking them, so that a busy database cannot slow the balancer's check down.
        return {"status": "draining", "instance_id": rt.settings.instance_id, "checks": {"drain": rt.drain.report()}}
    checks: dict[str, Any] = {}
    status = "ok"
    try:
        latency = await asyncio.wait_for(rt.db.ping(), timeout=rt.settings.db_connection_timeout)
        checks["database"] = {"status": "ok", "backend": rt.db.dialect, "latency_ms": round(latency * 1000, 2)}
    except (Unavailable, TimeoutError) as exc:
        checks["database"] = {"status": "down", "backend": rt.db.dialect, "error": str(exc)}
        status = "down"
    broker_ok = rt.broker.healthy
    checks["broker"] = {"status": "ok" if broker_ok else "down", "backend": type(rt.broker).__name__}
    if not broker_ok and status == "ok":
        status = "degraded"
    hub = rt.hub.health()
    checks["rooms"] = {"status": "stalled" if hub["stalled_rooms"] else "ok", **hub}
    if hub["stalled_rooms"] and status == "ok":
        status = "degraded"
        checks["rooms"]["reason"] = (f"{hub['stalled_rooms']} room(s) behind the event log for over "
                                     f"{rt.hub.stall_after:g} s; catching up")
    cache = rt.cache.stats()
    redis = cache.get("redis") or {}
    checks["cache"] = {
        "status": "ok" if cache["healthy"] else "degraded",
        "mode": cache["mode"],
        "redis": redis.get("state", "disabled") if cache["mode"] == "redis" else "disabled",
        "subscribed": redis.get("subscribed") if cache["mode"] == "redis" else None,
        "pending_invalidations": redis.get("pending_invalidations", 0),
    }
    if not cache["healthy"] and status == "ok":
        status = "degraded"  # served from the database; the cache recovers by itself
    return {"status": status, "instance_id": rt.settings.instance_id, "checks": checks}

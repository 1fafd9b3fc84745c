"""Readiness: each dependency's state. `down` (503) when the database is unreachable; `degraded`
(still 200) when only Redis is, because players on one instance can still play."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tableforge.domain.errors import Unavailable

if TYPE_CHECKING:
    from tableforge.services.runtime import Runtime


async def readiness(rt: Runtime) -> dict[str, Any]:
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
    return {"status": status, "instance_id": rt.settings.instance_id, "checks": checks}

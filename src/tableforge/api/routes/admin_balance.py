"""Admin routes for draining an instance and rebalancing sockets (docs/load-balancing.md).

Thin: the commands reach the named instances over their control channels (services/draining.py,
services/rebalance.py); the answers say what was asked, 202, since it happens over the next seconds.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import Field

from tableforge.api import schemas as S
from tableforge.api.deps import AdminDep, RuntimeDep
from tableforge.api.models import Strict
from tableforge.api.responses import JSON
from tableforge.services import draining, rebalance

router = APIRouter(prefix="/api/admin")
InstanceId = Annotated[str, Path(min_length=1, max_length=200)]
Window = Annotated[float, Field(ge=0, le=3600)]


class DrainIn(Strict):
    """Both optional: TABLEFORGE_DRAIN_SECONDS and TABLEFORGE_DRAIN_NOTICE_SECONDS by default."""

    window_seconds: Window | None = None
    notice_seconds: Annotated[float, Field(ge=0, le=600)] | None = None


class RebalanceIn(Strict):
    """All optional: the TABLEFORGE_REBALANCE_* settings by default."""

    tolerance: Annotated[float, Field(ge=0, le=10)] | None = None
    min_sockets: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    window_seconds: Window | None = None


class DrainOut(S.Out):
    instance_id: str
    draining: bool
    window_seconds: float | None = None
    notice_seconds: float | None = None


class ShedOut(S.Out):
    instance_id: str
    connections: int
    draining: bool
    shed: int


class RebalanceOut(S.Out):
    instances: list[ShedOut]
    mean: float
    shed: int
    window_seconds: float
    tolerance: float
    min_sockets: int


@router.post("/instances/{instance_id}/drain", status_code=202, responses=S.responses(DrainOut, 202))
async def drain(instance_id: InstanceId, _admin: AdminDep, rt: RuntimeDep, body: DrainIn | None = None) -> JSON:
    """The instance answers /ready with 503 and refuses new sockets at once, then after the notice
    closes its sockets (1012) evenly over the window. It stays drained until stopped or resumed."""
    body = body or DrainIn()
    out: dict[str, Any] = await draining.drain_instance(rt, instance_id, body.window_seconds, body.notice_seconds)
    return JSON(out, status_code=202)


@router.delete("/instances/{instance_id}/drain", status_code=202, responses=S.responses(DrainOut, 202))
async def resume(instance_id: InstanceId, _admin: AdminDep, rt: RuntimeDep) -> JSON:
    """Stop a drain: /ready 200 and sockets accepted again (closed ones stay where they went)."""
    return JSON(await draining.resume_instance(rt, instance_id), status_code=202)


@router.post("/rebalance", status_code=202, responses=S.responses(RebalanceOut, 202))
async def rebalance_sockets(_admin: AdminDep, rt: RuntimeDep, body: RebalanceIn | None = None) -> JSON:
    """Every instance above mean x (1 + tolerance), by at least `min_sockets`, closes its excess over the
    mean (1012) gradually over the window; its clients reconnect through the balancer."""
    body = body or RebalanceIn()
    return JSON(await rebalance.rebalance(rt, body.tolerance, body.min_sockets, body.window_seconds),
                status_code=202)

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tableforge.api.deps import RuntimeDep
from tableforge.api.responses import JSON
from tableforge.observability.health import readiness

router = APIRouter()


@router.get("/health")
async def health() -> JSON:
    return JSON({"status": "ok"})


@router.get("/ready")
async def ready(rt: RuntimeDep) -> JSON:
    report = await readiness(rt)
    return JSON(report, status_code=200 if report["status"] != "down" else 503)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

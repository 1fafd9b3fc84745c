from __future__ import annotations

import os

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from tableforge.api import schemas as S
from tableforge.api.deps import RuntimeDep
from tableforge.api.responses import JSON
from tableforge.observability import backup_record
from tableforge.services.health import readiness

router = APIRouter()


@router.get("/health", responses=S.responses(S.HealthOut))
async def health() -> JSON:
    return JSON({"status": "ok"})


@router.get("/ready", responses={200: {"model": S.ReadyOut},
                                 503: {"model": S.ReadyOut,
                                       "description": "the database is down, or this instance is draining"}})
async def ready(rt: RuntimeDep) -> JSON:
    report = await readiness(rt)
    return JSON(report, status_code=503 if report["status"] in ("down", "draining") else 200)


@router.get("/metrics", response_class=Response, responses=S.TEXT)
async def metrics(rt: RuntimeDep) -> Response:
    """With several workers (PROMETHEUS_MULTIPROC_DIR set by `serve --workers`), one scrape reads
    every worker's values: counters and histograms summed, live gauges summed over live workers."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(backup_record.BackupCollector(rt.settings.data_dir))  # read from its file, not mmap
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

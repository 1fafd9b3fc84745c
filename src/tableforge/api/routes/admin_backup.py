"""`GET /api/admin/backup`: when the last `tableforge backup` succeeded and failed (services/backup_record.py).

Its response model lives here rather than in api/schemas.py: one route's shape, kept beside it."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from tableforge.api import schemas as S
from tableforge.api.deps import AdminDep, RuntimeDep
from tableforge.api.responses import JSON
from tableforge.services import backup_record

router = APIRouter(prefix="/api/admin")


class BackupStatusOut(S.Out):
    """`last_success`/`last_failure`: `{started_at, finished_at, finished_ts, duration_s, backend, ...}` or null
    (never ran); `age_seconds`: since the last success (null: never)."""

    last_success: dict[str, Any] | None
    last_failure: dict[str, Any] | None
    age_seconds: float | None


@router.get("/backup", responses=S.responses(BackupStatusOut))
async def backup_status(_admin: AdminDep, rt: RuntimeDep) -> JSON:
    record = backup_record.read(rt.settings.data_dir)
    last = backup_record.timestamp(record["last_success"])
    return JSON({**record, "age_seconds": round(time.time() - last, 3) if last else None},
                headers={"Cache-Control": "no-store"})

"""Admin database reports (PROTOCOL.md: /api/admin/db/*). Thin: the reports live in `tableforge.db.reports`,
imported by the routes that use it (an operator asks for a report now and then; the server does not
keep the module in memory for it).

Responses say `Cache-Control: no-store`: they are live state, and admin-only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tableforge.api import schemas as S
from tableforge.api.deps import AdminDep, RuntimeDep
from tableforge.api.responses import JSON

router = APIRouter(prefix="/api/admin/db")
_NO_STORE = {"Cache-Control": "no-store"}


@router.get("/pool", responses=S.responses(S.ReportOut))
async def pool(rt: RuntimeDep, _admin: AdminDep) -> JSON:
    return JSON({"backend": rt.db.dialect, "pools": rt.db.pool_stats(),
                 "statement_timeout_s": rt.settings.db_statement_timeout,
                 "connection_timeout_s": rt.settings.db_connection_timeout,
                 "idle_timeout_s": rt.settings.db_idle_timeout,
                 "slow_query_ms": rt.settings.db_slow_query_ms}, headers=_NO_STORE)


@router.get("/slow-queries", responses=S.responses(S.ReportOut))
async def slow_queries(rt: RuntimeDep, _admin: AdminDep,
                       limit: Annotated[int, Query(ge=1, le=100)] = 20) -> JSON:
    from tableforge.db import reports

    return JSON(await reports.slow_queries(rt.db, limit=limit), headers=_NO_STORE)


@router.get("/tables", responses=S.responses(S.ReportOut))
async def tables(rt: RuntimeDep, _admin: AdminDep) -> JSON:
    from tableforge.db import reports

    return JSON(await reports.table_stats(rt.db), headers=_NO_STORE)


@router.post("/optimize", responses=S.responses(S.ReportOut))
async def optimize(rt: RuntimeDep, _admin: AdminDep) -> JSON:
    from tableforge.db import reports

    return JSON(await reports.optimize(rt.db), headers=_NO_STORE)

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from tableforge.api import schemas as S
from tableforge.api.deps import OptionalUserDep, RuntimeDep, UserDep
from tableforge.api.models import Complexity, RatingIn, SystemIn, SystemPatch, Uuid
from tableforge.api.responses import JSON
from tableforge.cache.http import CACHE_PRIVATE, CACHE_PUBLIC_CATALOG, conditional_json
from tableforge.services import systems

router = APIRouter()


@router.get("/api/systems", responses=S.responses(S.CatalogOut, not_modified=True))
async def search(
    request: Request,
    rt: RuntimeDep,
    category: Annotated[str | None, Query(max_length=50)] = None,
    complexity: Complexity | None = None,
    search: Annotated[str | None, Query(max_length=100)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """Public: shared caches may keep a page for `s-maxage`. Pages carry the surrogate keys
    `catalog` (all pages) and their filter combination's tag; every change to a system purges the
    tags of the pages it was or is on (systems.changed), so the edge serves them fresh after a write."""
    body = await systems.search(rt, category=category, complexity=complexity, text=search, page=page, limit=limit)
    return conditional_json(body, if_none_match=request.headers.get("if-none-match"),
                            cache_control=CACHE_PUBLIC_CATALOG,
                            keys=(systems.CATALOG_TAG, systems.page_tag(category, complexity, search)))


@router.post("/api/systems", status_code=201, responses=S.responses(S.SystemOut, 201))
async def create(body: SystemIn, user: UserDep, rt: RuntimeDep) -> JSON:
    return JSON(await systems.create(rt, user, body.model_dump()), status_code=201)


@router.get("/api/systems/{system_id}", responses=S.responses(S.SystemOut, not_modified=True))
async def get(system_id: Uuid, request: Request, user: OptionalUserDep, rt: RuntimeDep) -> Response:
    """A public system is public data (purged by `system-<id>`); a private one is its owner's."""
    system = await systems.get(rt, system_id, user)
    public = bool(system["is_public"])
    return conditional_json(system, if_none_match=request.headers.get("if-none-match"),
                            cache_control=CACHE_PUBLIC_CATALOG if public else CACHE_PRIVATE,
                            keys=(systems.edge_key(system_id),) if public else ())


@router.patch("/api/systems/{system_id}", responses=S.responses(S.SystemOut))
async def update(system_id: Uuid, body: SystemPatch, user: UserDep, rt: RuntimeDep) -> JSON:
    return JSON(await systems.update(rt, system_id, user, body.model_dump(exclude_unset=True)))


@router.delete("/api/systems/{system_id}", status_code=204)
async def delete(system_id: Uuid, user: UserDep, rt: RuntimeDep) -> Response:
    await systems.delete(rt, system_id, user)
    return Response(status_code=204)


@router.post("/api/systems/{system_id}/rating", responses=S.responses(S.RatingOut))
async def rate(system_id: Uuid, body: RatingIn, user: UserDep, rt: RuntimeDep) -> JSON:
    return JSON(await systems.rate(rt, system_id, user, body.rating))

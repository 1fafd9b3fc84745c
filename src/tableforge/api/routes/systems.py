from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from tableforge.api.deps import OptionalUserDep, RuntimeDep, UserDep
from tableforge.api.models import Complexity, RatingIn, SystemIn, SystemPatch, Uuid
from tableforge.api.responses import JSON
from tableforge.services import systems

router = APIRouter()


@router.get("/api/systems")
async def search(
    rt: RuntimeDep,
    category: Annotated[str | None, Query(max_length=50)] = None,
    complexity: Complexity | None = None,
    search: Annotated[str | None, Query(max_length=100)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSON:
    return JSON(await systems.search(rt, category=category, complexity=complexity, text=search,
                                               page=page, limit=limit))


@router.post("/api/systems", status_code=201)
async def create(body: SystemIn, user: UserDep, rt: RuntimeDep) -> JSON:
    return JSON(await systems.create(rt, user, body.model_dump()), status_code=201)


@router.get("/api/systems/{system_id}")
async def get(system_id: Uuid, user: OptionalUserDep, rt: RuntimeDep) -> JSON:
    return JSON(await systems.get(rt, system_id, user))


@router.patch("/api/systems/{system_id}")
async def update(system_id: Uuid, body: SystemPatch, user: UserDep, rt: RuntimeDep) -> JSON:
    return JSON(await systems.update(rt, system_id, user, body.model_dump(exclude_unset=True)))


@router.delete("/api/systems/{system_id}", status_code=204)
async def delete(system_id: Uuid, user: UserDep, rt: RuntimeDep) -> Response:
    await systems.delete(rt, system_id, user)
    return Response(status_code=204)


@router.post("/api/systems/{system_id}/rating")
async def rate(system_id: Uuid, body: RatingIn, user: UserDep, rt: RuntimeDep) -> JSON:
    return JSON(await systems.rate(rt, system_id, user, body.rating))

"""Admin routes for instances, rooms across instances, broadcast and per-instance commands."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from tableforge.api import schemas as S
from tableforge.api.deps import AdminDep, RuntimeDep
from tableforge.api.models import BroadcastIn, Uuid
from tableforge.api.responses import JSON
from tableforge.domain import events as ev
from tableforge.services import admin

router = APIRouter(prefix="/api/admin")
InstanceId = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("/instances", responses=S.responses(S.InstancesOut))
async def instances(_admin: AdminDep, rt: RuntimeDep) -> JSON:
    items = await admin.instances(rt)
    return JSON({"instances": items, "total": len(items)})


@router.get("/rooms/{room_id}/members", responses=S.responses(S.RoomMembersOut))
async def room_members(room_id: Uuid, _admin: AdminDep, rt: RuntimeDep) -> JSON:
    return JSON(await admin.room_members(rt, room_id))


@router.post("/broadcast", status_code=202, responses=S.responses(S.SentOut, 202))
async def broadcast(body: BroadcastIn, _admin: AdminDep, rt: RuntimeDep) -> JSON:
    await admin.broadcast(rt, body.message)
    return JSON({"sent": True}, status_code=202)


@router.post("/instances/{instance_id}/close-connections", status_code=202, responses=S.responses(S.ClosingOut, 202))
async def close_connections(instance_id: InstanceId, _admin: AdminDep, rt: RuntimeDep) -> JSON:
    await admin.close_connections(rt, instance_id)
    return JSON({"instance_id": instance_id, "closing": True}, status_code=202)


@router.get("/stats", responses=S.responses(S.StatsOut))
async def stats(_admin: AdminDep, rt: RuntimeDep) -> JSON:
    items = await admin.gather_stats(rt)
    return JSON({"instances": items, "total": len(items),
                 "connections": sum(int(i.get("connections") or 0) for i in items)})


@router.post("/users/{user_id}/message", status_code=202, responses=S.responses(S.ReachedOut, 202))
async def message_user(user_id: Uuid, body: BroadcastIn, _admin: AdminDep, rt: RuntimeDep) -> Response:
    """Send-to-user (an extension of PROTOCOL.md): a `system.message` on every socket of the user."""
    reached = await admin.send_to_user(rt, user_id, {"type": ev.SYSTEM_MESSAGE, "message": body.message})
    return JSON({"instances": reached}, status_code=202)

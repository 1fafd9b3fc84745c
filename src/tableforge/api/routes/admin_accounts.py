"""Admin routes for accounts (*extensions*): disable/enable a user, registration invites."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tableforge.api import schemas as S
from tableforge.api.deps import AdminDep, RuntimeDep
from tableforge.api.models import InviteIn, Uuid
from tableforge.api.responses import JSON
from tableforge.services import accounts, invites

router = APIRouter(prefix="/api/admin")


@router.post("/users/{user_id}/disable", responses=S.responses(S.UserStateOut))
async def disable_user(user_id: Uuid, admin: AdminDep, rt: RuntimeDep) -> JSON:
    """The user cannot log in; every session is revoked and every socket closed (4401)."""
    return JSON(await accounts.set_disabled(rt, admin["id"], user_id, True))


@router.post("/users/{user_id}/enable", responses=S.responses(S.UserStateOut))
async def enable_user(user_id: Uuid, admin: AdminDep, rt: RuntimeDep) -> JSON:
    return JSON(await accounts.set_disabled(rt, admin["id"], user_id, False))


@router.post("/invites", status_code=201, responses=S.responses(S.InviteCreatedOut, 201))
async def create_invite(admin: AdminDep, rt: RuntimeDep, body: InviteIn | None = None) -> JSON:
    body = body or InviteIn()
    invite = await invites.create(rt, admin["id"], body.uses, body.expires_in_hours)
    return JSON(invite, status_code=201, headers={"Cache-Control": "no-store"})


@router.get("/invites", responses=S.responses(S.InvitesOut))
async def list_invites(_admin: AdminDep, rt: RuntimeDep) -> JSON:
    items = await invites.list_all(rt)
    return JSON({"invites": items, "total": len(items)})


@router.delete("/invites/{invite_id}", status_code=204)
async def revoke_invite(invite_id: Uuid, _admin: AdminDep, rt: RuntimeDep) -> Response:
    await invites.revoke(rt, invite_id)
    return Response(status_code=204)

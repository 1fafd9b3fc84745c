from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from tableforge.api import schemas as S
from tableforge.api.deps import SESSION_COOKIE, RuntimeDep, UserDep
from tableforge.api.models import LoginIn, RegisterIn
from tableforge.api.responses import JSON
from tableforge.services import users

router = APIRouter()


def _session_reply(user: dict[str, Any], token: str, status: int, rt: RuntimeDep) -> JSON:
    response = JSON({"user": user, "token": token}, status_code=status)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax",
                        max_age=int(rt.settings.session_ttl_hours * 3600))
    return response


@router.post("/api/auth/register", status_code=201, responses=S.responses(S.SessionOut, 201))
async def register(body: RegisterIn, rt: RuntimeDep) -> JSON:
    user, token = await users.register(rt, body.username, body.password, body.first_name, body.last_name)
    return _session_reply(user, token, 201, rt)


@router.post("/api/auth/login", responses=S.responses(S.SessionOut))
async def login(body: LoginIn, rt: RuntimeDep) -> JSON:
    user, token = await users.login(rt, body.username, body.password)
    return _session_reply(user, token, 200, rt)


@router.post("/api/auth/logout", status_code=204)
async def logout(request: Request, _user: UserDep, rt: RuntimeDep) -> Response:
    await users.logout(rt, request.state.token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/api/users/me", responses=S.responses(S.UserOut))
async def me(user: UserDep) -> JSON:
    return JSON(user)

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request, Response

from tableforge.api import schemas as S
from tableforge.api.deps import SESSION_COOKIE, RuntimeDep, UserDep, client_address
from tableforge.api.models import LoginIn, PasswordChangeIn, RegisterIn
from tableforge.api.responses import JSON
from tableforge.api.security import session_cookie_options
from tableforge.domain.errors import Unauthorized
from tableforge.observability.auth_metrics import WS_TICKETS_BY_RESULT
from tableforge.services import users

router = APIRouter()


def _session_reply(request: Request, user: dict[str, Any], token: str, status: int, rt: RuntimeDep) -> JSON:
    response = JSON({"user": user, "token": token}, status_code=status)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(rt.settings.session_ttl_hours * 3600),
                        **session_cookie_options(rt.settings, request))
    return response


@router.post("/api/auth/register", status_code=201, responses=S.responses(S.SessionOut, 201))
async def register(request: Request, body: RegisterIn, rt: RuntimeDep) -> JSON:
    user, token = await users.register(rt, body.username, body.password, body.first_name, body.last_name,
                                       body.invite_code)
    return _session_reply(request, user, token, 201, rt)


@router.post("/api/auth/login", responses=S.responses(S.SessionOut))
async def login(body: LoginIn, request: Request, rt: RuntimeDep) -> JSON:
    # Limited per username (case-insensitive) and per client address: 429 once either is full.
    async with rt.guards.login.attempt(user=body.username.lower(), address=client_address(request)) as attempt:
        try:
            user, token = await users.login(rt, body.username, body.password)
        except Unauthorized:
            attempt.wrong()
            raise
        attempt.right()
    return _session_reply(request, user, token, 200, rt)


@router.post("/api/auth/logout", status_code=204)
async def logout(request: Request, _user: UserDep, rt: RuntimeDep) -> Response:
    await users.logout(rt, request.state.token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, **session_cookie_options(rt.settings, request))
    return response


@router.post("/api/auth/ws-ticket", responses=S.responses(S.TicketOut))
async def ws_ticket(request: Request, _user: UserDep, rt: RuntimeDep) -> JSON:
    """*extension*: a single-use ticket for `/ws?ticket=…`, valid a few seconds, for the caller's
    session (so the page never puts its long-lived token in a URL)."""
    ticket = secrets.token_urlsafe(24)
    await rt.tickets.put(ticket, users.hash_token(request.state.token))
    WS_TICKETS_BY_RESULT["issued"].inc()
    return JSON({"ticket": ticket, "expires_in": rt.settings.ws_ticket_seconds},
                headers={"Cache-Control": "no-store"})


@router.post("/api/users/me/password", status_code=204)
async def change_password(request: Request, body: PasswordChangeIn, user: UserDep, rt: RuntimeDep) -> Response:
    """*extension*: every other session of the user is revoked and its sockets closed (4401)."""
    await users.change_password(rt, user["id"], request.state.token, body.current_password, body.new_password)
    return Response(status_code=204)


@router.get("/api/users/me", responses=S.responses(S.UserOut))
async def me(user: UserDep) -> JSON:
    return JSON(user)

"""Who opens a socket (PROTOCOL.md, "WebSocket authentication"): a bearer header, a single-use
ticket (`?ticket=`, what the web page uses), a session token in the URL (`?token=`, kept for
non-browser clients), or the HttpOnly session cookie. Only the cookie is sent by a browser on its
own, so only a cookie-authenticated handshake must come from an allowed `Origin` (close 1008);
the other ways need a secret the connecting page already holds."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import WebSocket

from tableforge.api.deps import SESSION_COOKIE
from tableforge.api.security import origin_allowed
from tableforge.domain.errors import AppError, Unauthorized
from tableforge.observability.auth_metrics import WS_HANDSHAKES_REFUSED_BY_REASON, WS_TICKETS_BY_RESULT
from tableforge.realtime import protocol as p
from tableforge.services import users
from tableforge.services.runtime import Runtime

CLOSE_UNAUTHORIZED = 4401
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
TICKET_MAX_CHARS = 128


class OriginRefused(AppError):
    status, code = 403, "origin_not_allowed"


async def authenticate(rt: Runtime, websocket: WebSocket) -> tuple[dict[str, Any], str]:
    """The user and session id behind the handshake, or an AppError (see `refuse`)."""
    auth = websocket.headers.get("authorization")
    query = websocket.query_params
    if auth is not None:
        scheme, _, value = auth.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    elif "ticket" in query:
        return await _redeem(rt, query["ticket"])
    elif "token" in query:
        token = query["token"]
    else:
        token = websocket.cookies.get(SESSION_COOKIE)
        if token is not None and not origin_allowed(rt.settings, websocket.headers.get("origin"),
                                                    websocket.headers.get("host")):
            raise OriginRefused("this page's origin may not open a socket with the session cookie")
    user = await users.authenticate(rt, token)
    return user, users.hash_token(token or "")


async def _redeem(rt: Runtime, ticket: str) -> tuple[dict[str, Any], str]:
    session_id = await rt.tickets.take(ticket) if 0 < len(ticket) <= TICKET_MAX_CHARS else None
    if session_id is None:
        WS_TICKETS_BY_RESULT["rejected"].inc()
        raise Unauthorized("the ticket is unknown, used or expired: ask for a new one", code="invalid_ticket")
    WS_TICKETS_BY_RESULT["redeemed"].inc()
    return await users.authenticate_session(rt, session_id), session_id


async def refuse(websocket: WebSocket, exc: AppError) -> None:
    """Explain in an error frame, then close: 1008 for a foreign origin; 1013 (try again later) when
    the database is down, since 4401 would tell the client its token is bad and log its user out;
    4401 otherwise."""
    if isinstance(exc, OriginRefused):
        reason, code, text = "origin", CLOSE_POLICY, "origin not allowed"
    elif exc.status == 503:
        reason, code, text = "unavailable", CLOSE_TRY_AGAIN, "try again later"
    else:
        reason, code, text = "unauthorized", CLOSE_UNAUTHORIZED, "unauthorized"
    WS_HANDSHAKES_REFUSED_BY_REASON[reason].inc()
    with contextlib.suppress(Exception):
        await websocket.send_text(p.encode({"type": "error", "code": exc.code, "message": exc.message}))
        await websocket.close(code, text)

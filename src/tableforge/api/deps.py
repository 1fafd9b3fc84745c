"""Request dependencies: the runtime, and the caller's identity from a bearer token or cookie."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from tableforge.domain.errors import Forbidden
from tableforge.services import users
from tableforge.services.runtime import Runtime

SESSION_COOKIE = "tableforge_session"


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain `def` dependency in a worker thread, two thread hops per request.
    return request.app.state.runtime  # type: ignore[no-any-return,unused-ignore]


def token_from(headers: Any, query: Any, cookies: Any) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None
    return query.get("token") or cookies.get(SESSION_COOKIE)


def client_address(conn: HTTPConnection) -> str:
    """The client's IP, the key of the per-address limits. Behind a proxy this is the proxy's
    unless it is one of `TABLEFORGE_TRUSTED_PROXIES` (uvicorn's forwarded_allow_ips): then it is
    the address the proxy puts in X-Forwarded-For."""
    return conn.client.host if conn.client else "unknown"


async def current_user(request: Request, rt: Annotated[Runtime, Depends(get_runtime)]) -> dict[str, Any]:
    token = token_from(request.headers, {}, request.cookies)
    user = await users.authenticate(rt, token)
    request.state.token = token
    return user


async def optional_user(request: Request, rt: Annotated[Runtime, Depends(get_runtime)]) -> dict[str, Any] | None:
    token = token_from(request.headers, {}, request.cookies)
    if not token:
        return None
    return await users.authenticate(rt, token)


async def admin_user(user: Annotated[dict[str, Any], Depends(current_user)]) -> dict[str, Any]:
    if not user["is_admin"]:
        raise Forbidden("administrators only", code="not_admin")
    return user


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
UserDep = Annotated[dict[str, Any], Depends(current_user)]
OptionalUserDep = Annotated[dict[str, Any] | None, Depends(optional_user)]
AdminDep = Annotated[dict[str, Any], Depends(admin_user)]

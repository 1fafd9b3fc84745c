"""Browser-facing protections of the HTTP edge: which origins may open cookie-authenticated
sockets, and when the session cookie is `Secure`."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from tableforge.config import Settings


def origin_allowed(settings: Settings, origin: str | None, host: str | None) -> bool:
    """The handshake's `Origin` is the server's own origin (TABLEFORGE_PUBLIC_URL, or the `Host`
    the browser connected to, over http or https) or one of TABLEFORGE_ALLOWED_ORIGINS. No
    Origin at all is not a browser (browsers always send one on a WebSocket handshake): allowed."""
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if origin in settings.allowed_origin_set or origin == settings.public_origin:
        return True
    if host:
        host = host.strip().lower()
        return origin in (f"http://{host}", f"https://{host}")
    return False


def cookie_secure(settings: Settings, conn: HTTPConnection) -> bool:
    """https as users see it: the public URL says so, or the request came over TLS. uvicorn sets
    the scheme from `X-Forwarded-Proto` only for TABLEFORGE_TRUSTED_PROXIES (`tableforge serve`
    passes them as its forwarded-allow-ips); from anyone else the header is ignored."""
    public = settings.public_origin
    if public is not None and public.startswith("https://"):
        return True
    return conn.url.scheme in ("https", "wss")


def session_cookie_options(settings: Settings, conn: HTTPConnection) -> dict[str, Any]:
    return {"httponly": True, "samesite": "lax", "secure": cookie_secure(settings, conn), "path": "/"}

"""The HTTP edge: security headers on every response, and refusals decided from the request line
and headers alone, before routing or reading a body: a body over the size limit (413), a NUL in
the path or the query string (422 `invalid_text`, see domain/text.py). Query strings are checked
raw: `%00` is the only way a NUL reaches a decoded parameter (the HTTP parser refuses raw NULs)."""

from __future__ import annotations

from typing import Final

from starlette.responses import Response
from starlette.types import Scope

from tableforge.api import errors
from tableforge.domain.text import INVALID_TEXT, NUL, NUL_MESSAGE


def refusal(scope: Scope, max_body: int) -> Response | None:
    """The error response for a request refused at the edge, or None to let it through."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit() and int(value) > max_body:
            return errors.error_response(413, "too_large", f"the request body is over {max_body} bytes")
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        return errors.error_response(422, INVALID_TEXT, f"query string: {NUL_MESSAGE}",
                                     [{"field": "", "in": "query", "problem": NUL_MESSAGE, "limit": "nul"}])
    if NUL in scope.get("path", ""):
        return errors.error_response(422, INVALID_TEXT, f"path: {NUL_MESSAGE}",
                                     [{"field": "", "in": "path", "problem": NUL_MESSAGE, "limit": "nul"}])
    return None


# Response headers. Every response: nosniff (a browser never guesses a type from the bytes) and a
# referrer that never leaves the site (page URLs may carry room ids).
_BASE: Final = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
# JSON and other API answers are never documents: nothing loads, nothing frames them.
API_CSP: Final = "default-src 'none'; frame-ancestors 'none'"
# The web client (web/): its own module scripts and stylesheet only (no inline script or style
# element; `element.style` from script is not restricted by CSP), images from /assets and the
# data: favicon, fetch and the WebSocket to its own origin ('self' covers ws:/wss: to the same
# host, CSP Level 3), never framed (clickjacking), no plugins, no <base> or form hijack.
PAGE_CSP: Final = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                   "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
                   "form-action 'self'; frame-ancestors 'none'")
PERMISSIONS_POLICY: Final = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
_API_HEADERS: Final = [*_BASE, (b"content-security-policy", API_CSP.encode())]
_PAGE_HEADERS: Final = [*_BASE, (b"content-security-policy", PAGE_CSP.encode()), (b"x-frame-options", b"DENY"),
                        (b"permissions-policy", PERMISSIONS_POLICY.encode())]
# /docs and /redoc are FastAPI's Swagger UI and ReDoc pages (inline script, a CDN): a strict CSP
# would break them, so they get the base headers and no framing only.
_DOCS_HEADERS: Final = [*_BASE, (b"x-frame-options", b"DENY")]
_API_PREFIXES: Final = ("/api/", "/health", "/ready", "/metrics", "/openapi.json")


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """The headers every response on `path` carries, chosen once per request from the path.
    /assets/* get the base here; their route adds the sandboxing CSP (see routes/rooms.py)."""
    if path.startswith(_API_PREFIXES):
        return _API_HEADERS
    if path.startswith("/assets/"):
        return _BASE
    if path.startswith(("/docs", "/redoc")):
        return _DOCS_HEADERS
    return _PAGE_HEADERS

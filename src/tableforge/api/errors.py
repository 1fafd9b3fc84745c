"""Every error leaves as `{"error": {"code", "message", "details"}}` with the right status; never a
stack trace. Validation problems say which field."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tableforge.api.responses import JSON
from tableforge.domain.errors import AppError
from tableforge.domain.text import INVALID_TEXT, NUL, NUL_MESSAGE
from tableforge.observability.logging import get_logger

log = get_logger(__name__)

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
               422: "validation_error", 429: "rate_limited", 503: "unavailable"}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSON:
    return JSON({"error": {"code": code, "message": message, "details": details}}, status_code=status,
                          headers=headers)


def app_error_response(exc: AppError) -> JSON:
    return error_response(exc.status, exc.code, exc.message, exc.details, headers=exc.headers)


def _detail(error: Any) -> dict[str, Any]:
    """One validation problem: the field (dotted path, without the `body` prefix), a human
    problem, and for limits the limit's name (`max_depth`, `int_range`, `nul`...) and the path
    inside a free-form document."""
    loc = error.get("loc", ())
    where = "query" if loc[:1] == ("query",) else "path" if loc[:1] == ("path",) else None
    detail: dict[str, Any] = {"field": ".".join(str(p) for p in loc if p not in ("body", "query", "path")),
                              "problem": error.get("msg", "invalid")}
    if where:
        detail["in"] = where
    kind = error.get("type")
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == INVALID_TEXT or (isinstance(value, str) and NUL in value) or any(
            isinstance(p, str) and NUL in p for p in loc):  # a NUL in a (refused) extra key counts too
        detail["limit"] = "nul"
        detail["problem"] = NUL_MESSAGE
    elif kind == "freeform_limit":
        detail["limit"] = ctx.get("limit")
    if "path" in ctx:
        detail["path"] = ctx["path"]
    if kind == "template_invalid":  # what kind of problem, and where in a dice notation (*extension*)
        detail["code"] = ctx.get("code")
        if "position" in ctx:
            detail["position"] = ctx["position"]
    return detail


def install(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSON:
        return app_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSON:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "bad_json", "the request body is not valid JSON")
        details = [_detail(e) for e in errors]
        # A NUL anywhere is its own code (domain/text.py), whatever else is wrong with the request.
        nul = [d for d in details if d.get("limit") == "nul"]
        code = INVALID_TEXT if nul else "validation_error"
        first = (nul or details or [{"field": "", "problem": "invalid"}])[0]
        return error_response(422, code, f"{first['field'] or 'request'}: {first['problem']}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSON:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSON:
        log.exception("unhandled_error", path=request.url.path, error=type(exc).__name__)
        return error_response(500, "internal_error", "something went wrong on our side")

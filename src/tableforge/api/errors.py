"""Every error leaves as `{"error": {"code", "message", "details"}}` with the right status; never a
stack trace. Validation problems say which field."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tableforge.api.responses import JSON
from tableforge.domain.errors import AppError
from tableforge.observability.logging import get_logger

log = get_logger(__name__)

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
               422: "validation_error", 429: "rate_limited", 503: "unavailable"}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSON:
    return JSON({"error": {"code": code, "message": message, "details": details}}, status_code=status,
                          headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSON:
        return error_response(exc.status, exc.code, exc.message, exc.details, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSON:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "bad_json", "the request body is not valid JSON")
        details = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                    "problem": e.get("msg", "invalid")} for e in errors]
        first = details[0] if details else {"field": "", "problem": "invalid"}
        return error_response(422, "validation_error", f"{first['field'] or 'request'}: {first['problem']}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSON:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSON:
        log.exception("unhandled_error", path=request.url.path, error=type(exc).__name__)
        return error_response(500, "internal_error", "something went wrong on our side")

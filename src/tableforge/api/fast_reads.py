"""The hot GETs (a room's snapshot and players, the catalog, a system, an asset file) without
FastAPI's per-request machinery.

A player's reads are most of an instance's HTTP requests, and through the full stack each one
passed five middleware layers, a linear route match, the dependency solver (an exit stack, a
sub-response, the runtime and user dependencies resolved as a graph) and back: about 0.5 ms of
CPU before the endpoint ran, more than most endpoints themselves (docs/benchmarks.md, session 9).
Here the request goes straight to the same endpoint function with the same arguments:

- the path is matched with the route's own regex and convertors, and path and query parameters are
  validated by the route's declared fields (`ModelField.validate`, what FastAPI's
  `request_params_to_args` calls), so the limits are the route's. Only plain scalar parameters
  (one value under one name, an immutable default) are read here, without the generic per-field
  look-ups (aliases, sequences, models, a copy of each default) FastAPI repeats per request;
  a route with another kind of parameter does not take the lane (checked at start-up);
- the runtime, the `Request` and the user are what the `RuntimeDep`, `UserDep` and `OptionalUserDep`
  dependencies give (deps.py);
- the route template's latency histogram, the edge refusals and the security headers are
  MetricsMiddleware's (app.py, edge.py); an `AppError` leaves as its exception handler shapes it.

Anything else leaves the lane before a byte is sent, and the full stack answers it as before: a
method other than GET, a parameter that does not validate (a 422 with every detail), a request the
edge refuses, an unexpected exception (a GET can be run again: these read). Only routes whose
every dependency is one of those three may take the lane (checked at start-up).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from fastapi import FastAPI, params
from fastapi._compat import ModelField, is_scalar_field
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from tableforge.api import deps, edge, errors
from tableforge.domain.errors import AppError

Observer = Callable[[str, str, int], Any]  # (method, route template, status) -> a histogram child


_IMMUTABLE = (type(None), bool, int, float, str, bytes)


@dataclass(frozen=True, slots=True)
class _Param:
    """A path or query parameter as the lane reads it."""

    field: ModelField
    key: str  # its name in the request
    loc: tuple[str, str]  # where a validation error would point
    required: bool
    default: Any

    @classmethod
    def of(cls, route: APIRoute, field: ModelField) -> _Param:
        info = field.field_info
        key = getattr(field, "validation_alias", None) or field.alias  # as FastAPI's get_validation_alias
        required = info.is_required()
        if (not isinstance(info, params.Path | params.Query) or not is_scalar_field(field) or not isinstance(key, str)
                or info.validate_default or not (required or isinstance(field.default, _IMMUTABLE))):
            raise ValueError(f"{route.path}: parameter {field.name!r} is not a plain scalar the fast lane reads")
        return cls(field, key, (info.in_.value, key), required, field.default)


def _read(fields: tuple[_Param, ...], source: Any) -> dict[str, Any] | None:
    """The endpoint's arguments from `source` (path parameters, or the query string), None if any
    is missing or does not validate: the full stack then answers with its 422."""
    values: dict[str, Any] = {}
    for p in fields:
        raw = source.get(p.key)
        if raw is None:
            if p.required:
                return None
            values[p.field.name] = p.default
            continue
        value, problems = p.field.validate(raw, values, loc=p.loc)
        if problems:
            return None
        values[p.field.name] = value
    return values


_NO_QUERY: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class _Hot:
    route: APIRoute
    regex: re.Pattern[str]
    path_params: tuple[_Param, ...]
    query_params: tuple[_Param, ...]
    runtime: str | None  # the endpoint's parameter names for what the dependencies would give
    user: str | None
    user_optional: bool


def _hot(route: APIRoute) -> _Hot:
    d = route.dependant
    if d.body_params or d.header_params or d.cookie_params or "GET" not in (route.methods or ()):
        raise ValueError(f"{route.path}: only GETs with path and query parameters take the fast lane")
    runtime = user = None
    optional = False
    for sub in d.dependencies:
        if sub.call is deps.get_runtime:
            runtime = sub.name
        elif sub.call in (deps.current_user, deps.optional_user):
            user, optional = sub.name, sub.call is deps.optional_user
        else:
            raise ValueError(f"{route.path}: dependency {sub.call!r} is not one the fast lane resolves")
    return _Hot(route, route.path_regex, tuple(_Param.of(route, f) for f in d.path_params),
                tuple(_Param.of(route, f) for f in d.query_params), runtime, user, optional)


class FastReads:
    def __init__(self, app: FastAPI, routes: Iterable[APIRoute], observe: Observer, max_body: int) -> None:
        self.app = app
        self._hot = [_hot(route) for route in routes]
        self._observe = observe
        self._max_body = max_body

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the request if it is one of the hot GETs with valid parameters; False (nothing
        sent) for the full stack to answer."""
        if scope["method"] != "GET":
            return False
        start = perf_counter()
        path = scope["path"]
        for hot in self._hot:
            matched = hot.regex.match(path)
            if matched is not None:
                break
        else:
            return False
        if edge.refusal(scope, self._max_body) is not None:
            return False  # only for the hot routes: MetricsMiddleware checks every other request
        route = hot.route
        convertors = route.param_convertors
        path_params = {k: convertors[k].convert(v) for k, v in matched.groupdict().items()}
        d = route.dependant
        values = _read(hot.path_params, path_params)
        if values is None:
            return False  # the full stack answers 422 with every detail
        if hot.query_params:
            raw_query = scope["query_string"]
            query = _read(hot.query_params, QueryParams(raw_query) if raw_query else _NO_QUERY)
            if query is None:
                return False
            values.update(query)
        scope["app"] = self.app
        scope["path_params"] = path_params
        scope["route"] = route
        request = Request(scope, receive)
        rt = self.app.state.runtime
        if d.request_param_name:
            values[d.request_param_name] = request
        if hot.runtime:
            values[hot.runtime] = rt
        try:
            if hot.user:
                values[hot.user] = await (deps.optional_user if hot.user_optional else deps.current_user)(request, rt)
            response = await route.endpoint(**values)
        except AppError as exc:
            response = errors.app_error_response(exc)
        except Exception:
            return False  # the full stack runs it again, and logs and answers what went wrong
        status = response.status_code
        extra = edge.security_headers(path)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            await response(scope, receive, send_with_headers)
        finally:
            self._observe("GET", route.path, status).observe(perf_counter() - start)
        return True

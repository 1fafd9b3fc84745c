"""The hot GETs (a room's snapshot and players, the catalog, a system, an asset file) without
FastAPI's per-request machinery.

A player's reads are most of an instance's HTTP requests, and through the full stack each one
passed five middleware layers, a linear route match, the dependency solver (an exit stack, a
sub-response, the runtime and user dependencies resolved as a graph) and back: about 0.5 ms of
CPU before the endpoint ran, more than most endpoints themselves (docs/benchmarks.md, session 9).
Here the request goes straight to the same endpoint function with the same arguments:

- the path is matched with the route's own regex and convertors, and path and query parameters are
  validated by FastAPI's own `request_params_to_args` against the route's declared fields, so the
  limits are the route's;
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

from fastapi import FastAPI
from fastapi.dependencies.utils import request_params_to_args
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from tableforge.api import deps, edge, errors
from tableforge.domain.errors import AppError

Observer = Callable[[str, str, int], Any]  # (method, route template, status) -> a histogram child


@dataclass(frozen=True, slots=True)
class _Hot:
    route: APIRoute
    regex: re.Pattern[str]
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
    return _Hot(route, route.path_regex, runtime, user, optional)


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
        values, problems = request_params_to_args(d.path_params, path_params)
        if d.query_params and not problems:
            query, problems = request_params_to_args(d.query_params, QueryParams(scope["query_string"]))
            values.update(query)
        if problems:
            return False  # the full stack answers 422 with every detail
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

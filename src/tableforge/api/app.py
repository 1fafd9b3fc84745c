"""The ASGI app: routes, error shape, metrics middleware, the static web client, and start-up."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from time import perf_counter
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prometheus_client import multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tableforge import __version__
from tableforge.api import docs, edge, errors, schemas
from tableforge.api.asset_files import AssetBytes
from tableforge.api.fast_reads import FastReads
from tableforge.api.responses import JSON
from tableforge.api.routes import (
    admin,
    admin_accounts,
    admin_cache,
    admin_db,
    admin_maintenance,
    auth,
    health,
    rooms,
    systems,
)
from tableforge.api.routes.admin_backup import router as backup_router
from tableforge.api.routes.admin_balance import router as balance_router
from tableforge.api.routes.transfer import router as transfer_router
from tableforge.api.ws import router as ws_router
from tableforge.api.ws import websocket_endpoint
from tableforge.config import Settings
from tableforge.observability import backup_record, metrics
from tableforge.observability.logging import configure_logging, get_logger
from tableforge.wiring import lifecycle
from tableforge.wiring.backends import build_runtime

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
log = get_logger(__name__)


class MetricsMiddleware:
    """Latency by route *template* (never the raw path: ids would make unbounded labels), the
    security headers of every response, and the edge refusals (api/edge.py: a body over the upload
    limit, a NUL in the path or query) before anything routes the request or reads its body.

    Lean on purpose: it wraps every request. The histogram child of each (method, route, status) is
    looked up once (`labels()` builds a key and takes a lock on every call), and the only
    per-request allocations are the send wrapper and the response's extended header list."""

    def __init__(self, app: ASGIApp, max_body: int, import_max_body: int) -> None:
        self.app = app
        self.max_body = max_body
        self.import_max_body = import_max_body  # `POST /api/rooms/import` only: room files are larger
        self._observer = metrics.RouteTimings()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        refused = edge.refusal(scope, self.import_max_body if path == "/api/rooms/import" else self.max_body)
        if refused is not None:
            refused.raw_headers.extend(edge.security_headers("/api/"))
            await refused(scope, receive, send)
            return
        start = perf_counter()
        status = 500
        extra = edge.security_headers(path)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self._observer(scope["method"], template, status).observe(perf_counter() - start)


# FastAPI's own layers that do nothing here, dropped from the stack (see TableForgeApp): its
# OpenTelemetry exception hook (the app runs without FastAPI telemetry) and its app-wide body
# limit (none is set: MetricsMiddleware refuses large bodies at the edge). By name, so that a
# FastAPI that renames or drops them leaves the stack as it builds it.
_UNUSED_LAYERS = frozenset({"ExceptionTelemetryMiddleware", "AppBodyLimitMiddleware"})


class TableForgeApp(FastAPI):
    """FastAPI, with `/ws` handed straight to its endpoint, and HTTP requests straight to the
    middleware stack (FastAPI's `__call__` asks on each request whether OpenTelemetry is set up;
    the app turns FastAPI telemetry off, see create_app).

    A socket lives for hours: through the middleware and routing stack it would keep ~20 suspended
    coroutines (and their frames, exit stacks and send wrappers) alive per socket, which the garbage
    collector re-scans on every full collection, and every frame it sends would pass through each
    wrapper. The socket endpoint needs none of them (it answers errors in-band and closes with codes)."""

    fast_reads: FastReads | None = None  # the hot GETs' lane (api/fast_reads.py), set by create_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.fast_reads is not None and await self.fast_reads.handle(scope, receive, send):
                return
            # What FastAPI.__call__ and Starlette.__call__ do for a request when telemetry is off.
            if self.root_path:
                scope["root_path"] = self.root_path
            scope["app"] = self
            if self.middleware_stack is None:
                self.middleware_stack = self.build_middleware_stack()
            await self.middleware_stack(scope, receive, send)
            return
        if kind == "websocket" and scope["path"] == "/ws":
            scope["app"] = self
            try:
                await websocket_endpoint(WebSocket(scope, receive, send))
            except asyncio.CancelledError:
                # Only uvicorn cancels a socket's task: at stop, when the sockets' cleanup outlasts its
                # graceful timeout (1,000 players leaving at once after a load test). Not an error of
                # the socket: the instance's stop closes and cleans up what is left (wiring/lifecycle),
                # where uvicorn would print a traceback per socket.
                return
            return
        await super().__call__(scope, receive, send)

    path_order: list[str] = []  # the documented order of the paths (see create_app)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's, with the paths in the documented order rather than the order they are tried."""
        schema = super().openapi()
        if self.path_order:
            rank: dict[str, int] = {}
            for i, path in enumerate(self.path_order):
                rank.setdefault(path, i)  # a path's first route places it
            paths = schema.get("paths", {})
            schema["paths"] = dict(sorted(paths.items(), key=lambda item: rank.get(item[0], len(rank))))
        return schema

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.max_body_size is not None:
            return stack
        outer = stack  # ServerErrorMiddleware, then FastAPI's layers, then ours
        inner = getattr(outer, "app", None)
        while inner is not None and type(inner).__name__ in _UNUSED_LAYERS:
            inner = getattr(inner, "app", None)
        if inner is not None and inner is not getattr(outer, "app", None):
            outer.app = inner  # type: ignore[attr-defined]
        return stack


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.instance_id, settings.log_level, settings.log_json)
    backup_record.install_collector(settings.data_dir)  # /metrics: when the last backup ran

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = build_runtime(settings)
        app.state.runtime = rt
        await lifecycle.start(rt)
        log.info("started", mode="scale-out" if settings.scale_out else "embedded", database=rt.db.dialect)
        try:
            yield
        finally:
            await lifecycle.stop(rt)
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                multiprocess.mark_process_dead(os.getpid())  # its live gauges stop counting
            log.info("stopped")

    app = TableForgeApp(title="TableForge", version=__version__, default_response_class=JSON,
                        lifespan=lifespan, responses=schemas.ERRORS,
                        # No OpenTelemetry here (Prometheus: /metrics): FastAPI would otherwise check
                        # for a configured provider on every request.
                        telemetry={"tracing": False, "metrics": False, "logs": False,
                                   "auto_configure": False},
                        docs_url=None, redoc_url=None)  # /docs: docs.install, offline
    app.state.asset_bytes = AssetBytes(settings.asset_cache_bytes, settings.asset_cache_file_bytes)
    errors.install(app)
    # The order of /openapi.json and /docs.
    documented = (health.router, auth.router, systems.router, rooms.router, admin.router, admin_accounts.router,
                  admin_cache.router, admin_db.router, admin_maintenance.router, backup_router, balance_router,
                  transfer_router, ws_router)
    # Requests try the routes in order, each candidate in turn: the catalog's and the rooms' (the load
    # test's hot routes) first. No path of theirs overlaps health's or auth's.
    for router in (systems.router, rooms.router, health.router, auth.router, *documented[4:]):
        app.include_router(router)
    app.path_order = [getattr(route, "path", "") for router in documented for route in router.routes]
    docs.install(app)
    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    max_body = settings.max_upload_bytes + 1024 * 1024
    app.add_middleware(MetricsMiddleware, max_body=max_body, import_max_body=settings.max_import_bytes + 1024 * 1024)
    hot = {rooms.snapshot, rooms.players, rooms.asset_file, systems.search, systems.get}
    # From the routers themselves: FastAPI keeps an included router whole (no prefix or dependencies here).
    hot_routes = [r for router in (rooms.router, systems.router) for r in router.routes
                  if isinstance(r, APIRoute) and r.endpoint in hot]
    if len(hot_routes) != len(hot):
        raise RuntimeError("each hot endpoint must have exactly one route")
    app.fast_reads = FastReads(app, hot_routes, metrics.RouteTimings(), max_body)
    return app

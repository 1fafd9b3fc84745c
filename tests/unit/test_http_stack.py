"""The HTTP middleware stack: FastAPI's idle layers are dropped, ours and the error handling stay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tableforge.api.app import create_app
from tableforge.api.routes import health, rooms, systems
from tableforge.config import load_settings


def _layers(app: Any) -> list[str]:
    names = []
    while app is not None and len(names) < 50:
        names.append(type(app).__name__)
        app = getattr(app, "app", None)
    return names


def test_the_stack_has_only_layers_that_do_something(tmp_path: Path) -> None:
    app = create_app(load_settings(data_dir=tmp_path, log_level="WARNING"))
    layers = _layers(app.build_middleware_stack())
    assert "ExceptionTelemetryMiddleware" not in layers and "AppBodyLimitMiddleware" not in layers
    assert layers[:4] == ["ServerErrorMiddleware", "MetricsMiddleware", "ExceptionMiddleware",
                          "AsyncExitStackMiddleware"], layers


def test_the_documented_order_of_paths_is_kept(tmp_path: Path) -> None:
    """Requests try the catalog's and the rooms' routes first; /openapi.json lists the paths as
    documented (health, auth, the catalog, rooms, ...) all the same."""
    app = create_app(load_settings(data_dir=tmp_path, log_level="WARNING"))
    tried = [getattr(r, "original_router", r) for r in app.router.routes]  # FastAPI's included routers
    assert tried.index(systems.router) < tried.index(rooms.router) < tried.index(health.router)
    paths = list(app.openapi()["paths"])
    assert paths[:3] == ["/health", "/ready", "/metrics"], paths[:5]
    assert paths.index("/api/auth/register") < paths.index("/api/systems") < paths.index("/api/rooms")
    assert paths.index("/api/rooms/{room_id}") < paths.index("/api/rooms/{room_id}/scenes"), "first route places"

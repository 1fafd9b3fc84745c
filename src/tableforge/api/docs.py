"""The interactive API page (`/docs`) served from this server alone, so it works offline.

FastAPI's default page loads Swagger UI from a CDN and is blank without internet (a game master's
LAN, an air-gapped install). The assets come from the `swagger-ui-py` package (Swagger UI 5, which
renders the OpenAPI 3.1 that FastAPI emits; `swagger-ui-bundle` ships Swagger UI 4, which cannot),
served under `/docs/assets/`. ReDoc would need its own CDN script, so it is not offered.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs/assets"
# Only what the page loads: the package also carries Swagger Editor (20 MB) which we do not serve.
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


class _AssetFiles(StaticFiles):
    """StaticFiles limited to ASSET_FILES; anything else in the package directory is a 404."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path not in ASSET_FILES:
            return "", None
        return super().lookup_path(path)


def swagger_assets_dir() -> Path:
    """The package's static files, found without importing it (its import pulls in jinja2 and
    PyYAML for its own framework handlers, which a server does not need in memory)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing: pip install swagger-ui-py")
    return Path(next(iter(spec.submodule_search_locations))).resolve() / "static"


def install(app: FastAPI) -> None:
    """Add `/docs` (and its OAuth2 redirect page) with local assets. Call before mounting `/`.
    The app must be created with `docs_url=None, redoc_url=None`."""
    title = f"{app.title} API"
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = "/docs/oauth2-redirect"
    app.mount(ASSETS_URL, _AssetFiles(directory=swagger_assets_dir()), name="docs-assets")

    async def swagger_page() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=title, oauth2_redirect_url=redirect_url,
                                   swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png")

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_api_route("/docs", swagger_page, include_in_schema=False)
    app.add_api_route(redirect_url, oauth2_redirect, include_in_schema=False)

"""JSON responses encoded with orjson (FastAPI's JSON is deprecated)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class JSON(JSONResponse):
    """A JSONResponse subclass only so that FastAPI's OpenAPI takes it for JSON: a route's declared
    response model is then the schema of its body (a plain Response makes it `{"type": "string"}`)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)

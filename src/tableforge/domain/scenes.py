"""Scenes: their limits, their grid settings, and who may see a token on them. Pure: no I/O.

A scene's `grid` is a small JSON object with validated defaults, so that the play tools (snapping,
measuring) can rely on every field being present and in range. A partial update keeps the fields
it does not name.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

MAX_SCENES: Final = 100
NAME_MAX_CHARS: Final = 100
GRID_TYPES: Final = ("square", "hex", "none")
DEFAULT_GRID: Final[dict[str, Any]] = {"type": "square", "size": 50, "offset_x": 0, "offset_y": 0,
                                       "color": "#000000", "opacity": 0.25, "distance": 5, "unit": "ft"}
GRID_SIZE_MIN, GRID_SIZE_MAX = 4, 1000
DISTANCE_MAX = 10_000
UNIT_MAX_CHARS = 10
_COLOR = re.compile(r"\A#[0-9a-fA-F]{6}\Z")


class GridError(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"grid.{field}: {problem}")
        self.field = field
        self.problem = problem


def _finite(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GridError(field, "must be a finite number")
    return value


def grid(changes: dict[str, Any] | None, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """`current` (or the defaults) with `changes` applied and checked; raises GridError."""
    out = dict(DEFAULT_GRID)
    if current:
        out.update({k: v for k, v in current.items() if k in DEFAULT_GRID})
    if changes is None:
        return out
    if not isinstance(changes, dict):
        raise GridError("", "must be an object")
    for key, value in changes.items():
        if key not in DEFAULT_GRID:
            raise GridError(str(key)[:40], "is not a grid setting")
        if key == "type":
            if value not in GRID_TYPES:
                raise GridError(key, f"must be one of {', '.join(GRID_TYPES)}")
        elif key == "size":
            if not GRID_SIZE_MIN <= _finite(value, key) <= GRID_SIZE_MAX:
                raise GridError(key, f"must be within {GRID_SIZE_MIN}..{GRID_SIZE_MAX}")
        elif key in ("offset_x", "offset_y"):
            _finite(value, key)
        elif key == "color":
            if not isinstance(value, str) or not _COLOR.match(value):
                raise GridError(key, "must be a colour like #1a2b3c")
        elif key == "opacity":
            if not 0 <= _finite(value, key) <= 1:
                raise GridError(key, "must be within 0..1")
        elif key == "distance":
            if not 0 < _finite(value, key) <= DISTANCE_MAX:
                raise GridError(key, f"must be greater than 0 and at most {DISTANCE_MAX}")
        elif key == "unit" and (not isinstance(value, str) or len(value) > UNIT_MAX_CHARS or "\x00" in value):
            raise GridError(key, f"must be text of at most {UNIT_MAX_CHARS} characters")
        out[key] = value
    size = out["size"]
    for key in ("offset_x", "offset_y"):
        if abs(out[key]) > size:
            raise GridError(key, "must be within ±size")
    return out


def visible_to_players(on_players_scene: bool, hidden: bool, asset_hidden: bool, fogged: bool) -> bool:
    """The one rule (docs/protocol.md, "What visible to players means")."""
    return on_players_scene and not hidden and not asset_hidden and not fogged

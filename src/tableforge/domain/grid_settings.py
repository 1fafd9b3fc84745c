"""A scene's grid settings: what they may hold, their limits, and one clear error per bad field.

Plain dataclass and hand-written checks (no pydantic): the same checks serve a game system's
template (HTTP), a scene's settings (HTTP or socket) and the catalog's own tests, and cost a few
microseconds. The wire form is `to_dict()`: the same keys the web page's grid.js reads.

Fields (defaults in `GridSettings`):
- `type`: `square`, `hex_flat` (flat-top hexes, columns), `hex_pointy` (pointy-top, rows) or
  `none` (no cells: free placement, straight-line distances);
- `size`: pixels between the centres of two neighbouring cells (a square's side, a hex's width
  across its flats), SIZE_MIN..SIZE_MAX;
- `offset_x`, `offset_y`: pixels the whole grid is moved by, so it lines up with the map's own
  grid; (0, 0) puts the first cell's bounding box at the board's origin;
- `color` (`#rrggbb`), `opacity` (0..1), `hidden` (lines not drawn; cells still snap and measure);
- `units_per_cell` (a number, 5) and `unit` (its name, "ft"): what one cell is worth when measuring;
- `diagonal`: how a square grid counts a diagonal step: `5-5-5` (every step one cell), `5-10-5`
  (every second diagonal step counts two) or `euclidean` (straight-line). Hex grids ignore it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Final, Literal, NoReturn, TypeAlias, get_args

from tableforge.domain.errors import ValidationFailed
from tableforge.domain.limits import COORD_MAX

ERROR_CODE: Final = "bad_grid"
GridType: TypeAlias = Literal["square", "hex_flat", "hex_pointy", "none"]
Diagonal: TypeAlias = Literal["5-5-5", "5-10-5", "euclidean"]
GRID_TYPES: Final[tuple[str, ...]] = get_args(GridType)
DIAGONALS: Final[tuple[str, ...]] = get_args(Diagonal)
HEX_TYPES: Final = ("hex_flat", "hex_pointy")

SIZE_MIN: Final = 8.0
SIZE_MAX: Final = 1000.0
OFFSET_MAX: Final = COORD_MAX
UNITS_PER_CELL_MIN: Final = 0.01
UNITS_PER_CELL_MAX: Final = 10_000.0
UNIT_MAX_CHARS: Final = 16
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


def _fail(field: str, limit: str, message: str) -> NoReturn:
    """`details`: the field and the broken rule (`type`, `choice`, `min`, `max`, `format`, `unknown`)."""
    raise ValidationFailed(f"grid {field}: {message}", code=ERROR_CODE, details={"field": field, "limit": limit})


@dataclass(frozen=True, slots=True)
class GridSettings:
    type: GridType = "square"
    size: float = 70.0  # the board's tokens are drawn 70 px wide: one cell by default
    offset_x: float = 0.0
    offset_y: float = 0.0
    color: str = "#000000"
    opacity: float = 0.25
    hidden: bool = False
    units_per_cell: float = 5.0
    unit: str = "ft"
    diagonal: Diagonal = "5-5-5"

    @property
    def is_hex(self) -> bool:
        return self.type in HEX_TYPES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, base: GridSettings | None = None) -> GridSettings:
        """`base` (the defaults without one) with the fields `data` gives, each one checked; a partial
        update is the same call with the current settings as `base`."""
        if not isinstance(data, Mapping):
            raise ValidationFailed("grid settings must be an object", code=ERROR_CODE,
                                   details={"field": "", "limit": "type"})
        changes: dict[str, Any] = {}
        for key, value in data.items():
            check = _CHECKS.get(key) if isinstance(key, str) else None
            if check is None:
                _fail(str(key)[:40], "unknown", f"unknown field; the fields are {', '.join(_CHECKS)}")
            changes[key] = check(key, value)
        return replace(base or cls(), **changes)


def _number(field: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(field, "type", "must be a number")
    if not math.isfinite(value):
        _fail(field, "type", "must be a finite number")
    if value < low:
        _fail(field, "min", f"must be at least {low:g}")
    if value > high:
        _fail(field, "max", f"must be at most {high:g}")
    return float(value)


def _choice(options: tuple[str, ...]) -> Any:
    def check(field: str, value: Any) -> str:
        if value not in options or not isinstance(value, str):
            _fail(field, "choice", f"must be one of {', '.join(options)}")
        return str(value)
    return check


def _color(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _COLOR.fullmatch(value):
        _fail(field, "format", "must be a colour like #33aaff")
    return value.lower()


def _unit(field: str, value: Any) -> str:
    if not isinstance(value, str):
        _fail(field, "type", "must be a string")
    text = " ".join(value.split())
    if not text:
        _fail(field, "min", "must not be empty (ft, m, hex, squares ...)")
    if len(text) > UNIT_MAX_CHARS:
        _fail(field, "max", f"must be at most {UNIT_MAX_CHARS} characters")
    if not text.isprintable():
        _fail(field, "format", "may not hold control characters")
    return text


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(field, "type", "must be true or false")
    return value


_CHECKS: dict[str, Any] = {
    "type": _choice(GRID_TYPES),
    "size": lambda f, v: _number(f, v, SIZE_MIN, SIZE_MAX),
    "offset_x": lambda f, v: _number(f, v, -OFFSET_MAX, OFFSET_MAX),
    "offset_y": lambda f, v: _number(f, v, -OFFSET_MAX, OFFSET_MAX),
    "color": _color,
    "opacity": lambda f, v: _number(f, v, 0.0, 1.0),
    "hidden": _bool,
    "units_per_cell": lambda f, v: _number(f, v, UNITS_PER_CELL_MIN, UNITS_PER_CELL_MAX),
    "unit": _unit,
    "diagonal": _choice(DIAGONALS),
}
FIELDS: Final[tuple[str, ...]] = tuple(_CHECKS)

"""Fog of war: which points of a scene players may see (docs/protocol.md, "Fog of war").

A scene's fog is a base (`revealed`: nothing fogged; `hidden`: everything fogged) and up to
MAX_SHAPES shapes applied in order on top of it. A point is fogged when the last shape containing
it (boundary included) is a `hide`; if none contains it, when the base is `hidden`. Pure: no I/O.

Cost: every shape keeps its bounding box, so a point outside a shape costs four comparisons; only a
polygon whose box holds the point is walked (even-odd rule, at most MAX_POINTS edges). A fog change
never needs the whole fog: a `reveal`/`hide` of shape S changes exactly the points inside S.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tableforge.domain.limits import COORD_MAX

REVEALED: Final = "revealed"
HIDDEN: Final = "hidden"
REVEAL: Final = "reveal"
HIDE: Final = "hide"
REVEAL_ALL: Final = "reveal_all"
HIDE_ALL: Final = "hide_all"
OPS: Final = (REVEAL, HIDE, REVEAL_ALL, HIDE_ALL)
MAX_SHAPES: Final = 200
MIN_POINTS: Final = 3
MAX_POINTS: Final = 64


class FogError(ValueError):
    """A shape or fog document that breaks the rules; `code` is the protocol's error code."""

    def __init__(self, message: str, code: str = "invalid_shape") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Shape:
    """A rectangle (`points` empty) or a polygon, with its bounding box."""

    kind: str  # "rect" | "polygon"
    min_x: float
    min_y: float
    max_x: float
    max_y: float
    points: tuple[tuple[float, float], ...] = ()

    def contains(self, x: float, y: float) -> bool:
        if x < self.min_x or x > self.max_x or y < self.min_y or y > self.max_y:
            return False
        if not self.points:
            return True
        return _in_polygon(self.points, x, y)

    def to_json(self) -> dict[str, Any]:
        if self.kind == "rect":
            return {"type": "rect", "x": self.min_x, "y": self.min_y, "width": self.max_x - self.min_x,
                    "height": self.max_y - self.min_y}
        return {"type": "polygon", "points": [[px, py] for px, py in self.points]}


def _in_polygon(points: Sequence[tuple[float, float]], x: float, y: float) -> bool:
    """Even-odd rule, with points on an edge counted as inside."""
    inside = False
    n = len(points)
    x1, y1 = points[n - 1]
    for i in range(n):
        x2, y2 = points[i]
        # On the edge (x1,y1)-(x2,y2)? Collinear and within the segment's box.
        if (min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2)
                and (x2 - x1) * (y - y1) == (y2 - y1) * (x - x1)):
            return True
        if (y1 > y) != (y2 > y):
            cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < cross:
                inside = not inside
        x1, y1 = x2, y2
    return inside


def _encloses(points: Sequence[tuple[float, float]]) -> bool:
    """Whether the points are not all on one line."""
    x0, y0 = points[0]
    other = next((p for p in points if p != (x0, y0)), None)
    if other is None:
        return False
    dx, dy = other[0] - x0, other[1] - y0
    return any(dx * (y - y0) != dy * (x - x0) for x, y in points)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FogError(f"{what} must be a number")
    number = float(value)
    if not -COORD_MAX <= number <= COORD_MAX:  # also refuses NaN
        raise FogError(f"{what} must be within ±{COORD_MAX:,.0f}")
    return number


def parse_shape(raw: Any) -> Shape:
    """A shape from its JSON form (`{type: "rect", x, y, width, height}` or
    `{type: "polygon", points: [[x, y], …]}`); raises FogError."""
    if not isinstance(raw, dict):
        raise FogError("a shape must be an object")
    kind = raw.get("type")
    if kind == "rect":
        extra = set(raw) - {"type", "x", "y", "width", "height", "op"}
        if extra:
            raise FogError(f"unknown rect field {sorted(extra)[0]!r}")
        x, y = _number(raw.get("x"), "x"), _number(raw.get("y"), "y")
        width, height = _number(raw.get("width"), "width"), _number(raw.get("height"), "height")
        if width <= 0 or height <= 0:
            raise FogError("width and height must be greater than 0")
        return Shape("rect", x, y, x + width, y + height)
    if kind == "polygon":
        extra = set(raw) - {"type", "points", "op"}
        if extra:
            raise FogError(f"unknown polygon field {sorted(extra)[0]!r}")
        points = raw.get("points")
        if not isinstance(points, list) or not MIN_POINTS <= len(points) <= MAX_POINTS:
            raise FogError(f"a polygon has {MIN_POINTS}..{MAX_POINTS} points")
        parsed: list[tuple[float, float]] = []
        for i, point in enumerate(points):
            if not isinstance(point, list | tuple) or len(point) != 2:
                raise FogError(f"points[{i}] must be [x, y]")
            parsed.append((_number(point[0], f"points[{i}][0]"), _number(point[1], f"points[{i}][1]")))
        if not _encloses(parsed):
            raise FogError("a polygon must enclose an area (its points are all on one line)")
        xs = [p[0] for p in parsed]
        ys = [p[1] for p in parsed]
        return Shape("polygon", min(xs), min(ys), max(xs), max(ys), tuple(parsed))
    raise FogError('a shape\'s type is "rect" or "polygon"')


@dataclass(slots=True)
class Fog:
    base: str = REVEALED
    shapes: list[tuple[str, Shape]] = field(default_factory=list)  # (op, shape), in order

    @property
    def uniform(self) -> bool:
        """No shapes: every point is fogged alike (by the base)."""
        return not self.shapes

    def fogged(self, x: float, y: float) -> bool:
        for op, shape in reversed(self.shapes):
            if shape.contains(x, y):
                return op == HIDE
        return self.base == HIDDEN

    def apply(self, op: str, shape: Shape | None) -> None:
        """Apply one `fog.change`; raises FogError (`fog_full` past MAX_SHAPES)."""
        if op in (REVEAL_ALL, HIDE_ALL):
            self.base = REVEALED if op == REVEAL_ALL else HIDDEN
            self.shapes = []
            return
        if op not in (REVEAL, HIDE):
            raise FogError(f"op must be one of {', '.join(OPS)}")
        if shape is None:
            raise FogError(f"{op} needs a shape")
        if len(self.shapes) >= MAX_SHAPES:
            raise FogError(f"the fog already has {MAX_SHAPES} shapes: reveal all or hide all, then draw again",
                           code="fog_full")
        self.shapes.append((op, shape))

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base, "shapes": [{"op": op, **shape.to_json()} for op, shape in self.shapes]}


def parse_fog(raw: Any) -> Fog:
    """A stored fog document (`{base, shapes: [{op, type, …}]}`); None or {} is no fog."""
    if not raw:
        return Fog()
    if not isinstance(raw, dict):
        raise FogError("fog must be an object")
    base = raw.get("base", REVEALED)
    if base not in (REVEALED, HIDDEN):
        raise FogError('fog base is "revealed" or "hidden"')
    shapes = raw.get("shapes") or []
    if not isinstance(shapes, list) or len(shapes) > MAX_SHAPES:
        raise FogError(f"fog has at most {MAX_SHAPES} shapes")
    parsed = []
    for item in shapes:
        op = item.get("op") if isinstance(item, dict) else None
        if op not in (REVEAL, HIDE):
            raise FogError('a fog shape\'s op is "reveal" or "hide"')
        parsed.append((op, parse_shape(item)))
    return Fog(base, parsed)


def fogged_after(op: str, shape: Shape | None, was_fogged: bool, x: float, y: float) -> bool:
    """A point's fog state after one change, from its state before: the whole fog is never needed."""
    if op == REVEAL_ALL:
        return False
    if op == HIDE_ALL:
        return True
    if shape is not None and shape.contains(x, y):
        return op == HIDE
    return was_fogged

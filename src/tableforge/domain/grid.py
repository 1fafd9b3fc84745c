"""Grid geometry: which cell a point is in, a cell's centre, snapping a token, distances in cells
and in the scene's units. Pure functions of `GridSettings` (domain/grid_settings.py).

The web page has the same functions in `web/js/grid.js` (camelCase names); tests/unit/test_grid_js.py
runs both on one table of cases so the board and the server never disagree. To keep them equal to
the last bit, both sides use the same operations in the same order: rounding is `floor(v + 0.5)`
(Python's `round` rounds halves to even, JavaScript's `Math.round` up), lengths are
`sqrt(dx*dx + dy*dy)` (never `hypot`, which JavaScript engines do not round alike), and ties
between equally near candidates go to the first in a fixed order.

Cells are `(col, row)` on a square grid and axial `(q, r)` on a hex grid (redblobgames.com's
"axial coordinates"): on pointy-top hexes `q` runs along a row and `r` down-right; on flat-top
hexes `q` runs along a column's zig-zag to the right and `r` straight down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tableforge.domain.errors import ValidationFailed
from tableforge.domain.grid_settings import GridSettings

SQRT3 = math.sqrt(3.0)
TOKEN_CELLS_MIN = 0.25  # a token's size in cells (1 = 1x1, 2 = 2x2, 0.5 = a tiny creature)
TOKEN_CELLS_MAX = 20.0
MAX_WAYPOINTS = 64  # points of one measured path

Point = tuple[float, float]
Cell = tuple[int, int]


def _round(value: float) -> int:
    return math.floor(value + 0.5)


def _hex_radius(g: GridSettings) -> float:
    """Centre-to-corner distance; `size` is the width across the flats, `sqrt(3)` radii."""
    return g.size / SQRT3


def _hex_origin(g: GridSettings) -> Point:
    """The centre of hex (0, 0): its bounding box starts at the offset."""
    radius = _hex_radius(g)
    if g.type == "hex_pointy":
        return g.offset_x + g.size / 2, g.offset_y + radius
    return g.offset_x + radius, g.offset_y + g.size / 2


def _cube_round(q: float, r: float) -> Cell:
    """The hex a fractional axial position falls in (round in cube coordinates, then repair the
    component that rounding moved the most so that x + y + z stays 0)."""
    x, z = q, r
    y = -x - z
    rx, ry, rz = _round(x), _round(y), _round(z)
    dx, dy, dz = abs(rx - x), abs(ry - y), abs(rz - z)
    if dx > dy and dx > dz:
        rx = -ry - rz
    elif dy > dz:
        ry = -rx - rz
    else:
        rz = -rx - ry
    return rx, rz


def cell_at(g: GridSettings, x: float, y: float) -> Cell:
    """The cell holding the point (on a `none` grid: the square cell of `size` it would be in)."""
    if not g.is_hex:
        return math.floor((x - g.offset_x) / g.size), math.floor((y - g.offset_y) / g.size)
    ox, oy = _hex_origin(g)
    px, py = x - ox, y - oy
    radius = _hex_radius(g)
    if g.type == "hex_pointy":
        q = (SQRT3 / 3 * px - py / 3) / radius
        r = (2 / 3 * py) / radius
    else:
        q = (2 / 3 * px) / radius
        r = (-px / 3 + SQRT3 / 3 * py) / radius
    return _cube_round(q, r)


def cell_center(g: GridSettings, cell: Cell) -> Point:
    col, row = cell
    if not g.is_hex:
        return g.offset_x + (col + 0.5) * g.size, g.offset_y + (row + 0.5) * g.size
    ox, oy = _hex_origin(g)
    radius = _hex_radius(g)
    if g.type == "hex_pointy":
        return ox + g.size * (col + row / 2), oy + 1.5 * radius * row
    return ox + 1.5 * radius * col, oy + g.size * (row + col / 2)


_HALF_SQRT3 = SQRT3 / 2
# Unit vectors to the corners, written out rather than computed with cos/sin: the C library's and
# the JavaScript engine's cos/sin may differ in the last bit.
_FLAT_CORNERS = ((1.0, 0.0), (0.5, _HALF_SQRT3), (-0.5, _HALF_SQRT3), (-1.0, 0.0), (-0.5, -_HALF_SQRT3),
                 (0.5, -_HALF_SQRT3))
_POINTY_CORNERS = ((_HALF_SQRT3, -0.5), (_HALF_SQRT3, 0.5), (0.0, 1.0), (-_HALF_SQRT3, 0.5), (-_HALF_SQRT3, -0.5),
                   (0.0, -1.0))


def hex_corners(g: GridSettings, cell: Cell) -> list[Point]:
    """The six corners of a hex, clockwise (y points down) from the right-most (flat-top) or the
    upper right (pointy-top)."""
    cx, cy = cell_center(g, cell)
    radius = _hex_radius(g)
    return [(cx + radius * ux, cy + radius * uy)
            for ux, uy in (_POINTY_CORNERS if g.type == "hex_pointy" else _FLAT_CORNERS)]


def _check_cells(cells: float) -> float:
    if isinstance(cells, bool) or not isinstance(cells, int | float) or not math.isfinite(cells) \
            or not TOKEN_CELLS_MIN <= cells <= TOKEN_CELLS_MAX:
        raise ValidationFailed(f"a token's size must be {TOKEN_CELLS_MIN:g} to {TOKEN_CELLS_MAX:g} cells",
                               code="bad_token_size", details={"field": "size"})
    return float(cells)


def snap(g: GridSettings, x: float, y: float, cells: float = 1.0) -> Point:
    """Where a token whose centre is dropped at (x, y) lands.

    Square: a token of `cells` x `cells` (>= 1) lines its edges up with the grid lines nearest to
    them, so odd sizes centre on a cell and even sizes on a grid corner; a token under one cell
    centres on the cell it is over. Hex: odd sizes (and tokens under one cell) centre on a hex,
    even sizes on the corner where three hexes meet. A `none` grid leaves the point alone."""
    n = _check_cells(cells)
    if g.type == "none":
        return x, y
    if not g.is_hex:
        if n < 1:
            return cell_center(g, cell_at(g, x, y))
        half = n * g.size / 2
        left = g.offset_x + _round((x - half - g.offset_x) / g.size) * g.size
        top = g.offset_y + _round((y - half - g.offset_y) / g.size) * g.size
        return left + half, top + half
    cell = cell_at(g, x, y)
    if n < 1 or _round(n) % 2 == 1:
        return cell_center(g, cell)
    best = (0.0, 0.0)
    best_d2 = math.inf
    for cx, cy in hex_corners(g, cell):
        d2 = (cx - x) * (cx - x) + (cy - y) * (cy - y)
        if d2 < best_d2:
            best, best_d2 = (cx, cy), d2
    return best


def hex_distance(a: Cell, b: Cell) -> int:
    """Steps between two hexes (axial coordinates)."""
    dq, dr = a[0] - b[0], a[1] - b[1]
    return (abs(dq) + abs(dr) + abs(dq + dr)) // 2


def cell_distance(g: GridSettings, a: Cell, b: Cell) -> float:
    """Cells between two cells, by the grid's rule (hexes: steps; squares: the diagonal rule)."""
    return path_distance(g, [a, b])


def path_distance(g: GridSettings, cells: Sequence[Cell]) -> float:
    """Cells along a path through `cells` in order. Under 5-10-5 the diagonal count carries from
    one leg to the next (the second diagonal of the whole move costs two, whichever leg it is on)."""
    if g.is_hex:
        return float(sum(hex_distance(cells[i], cells[i + 1]) for i in range(len(cells) - 1)))
    straight = 0
    diagonals = 0
    euclid = 0.0
    for i in range(len(cells) - 1):
        dc, dr = abs(cells[i + 1][0] - cells[i][0]), abs(cells[i + 1][1] - cells[i][1])
        straight += max(dc, dr) - min(dc, dr)
        diagonals += min(dc, dr)
        euclid += math.sqrt(dc * dc + dr * dr)
    if g.diagonal == "euclidean":
        return euclid
    if g.diagonal == "5-10-5":
        return float(straight + diagonals + diagonals // 2)
    return float(straight + diagonals)


@dataclass(frozen=True, slots=True)
class Measurement:
    cells: float  # in cells (not rounded)
    units: float  # cells * units_per_cell, to 0.1
    text: str  # "15 ft", what the ruler shows


def measure(g: GridSettings, points: Sequence[Point]) -> Measurement:
    """The length of a ruler dragged through `points` (board pixels). On a grid the points count
    as the cells they are in, by the grid's rule; with no grid, the straight lines, `size`
    pixels being one cell."""
    if not 2 <= len(points) <= MAX_WAYPOINTS:
        raise ValidationFailed(f"a measurement needs 2 to {MAX_WAYPOINTS} points", code="bad_measurement",
                               details={"field": "points"})
    if g.type == "none":
        pixels = 0.0
        for i in range(len(points) - 1):
            dx, dy = points[i + 1][0] - points[i][0], points[i + 1][1] - points[i][1]
            pixels += math.sqrt(dx * dx + dy * dy)
        cells = pixels / g.size
    else:
        cells = path_distance(g, [cell_at(g, x, y) for x, y in points])
    units = to_units(g, cells)
    return Measurement(cells, units, f"{format_number(units)} {g.unit}")


def to_units(g: GridSettings, cells: float) -> float:
    """Cells in the scene's units, to one decimal."""
    return math.floor(cells * g.units_per_cell * 10 + 0.5) / 10


def format_number(value: float) -> str:
    """`15`, `7.5`: a whole number without a decimal point, as JavaScript writes it."""
    return str(int(value)) if value == int(value) else repr(value)

"""Grid geometry (snap, hex distance, the diagonal rules) and the grid settings' validation."""

from __future__ import annotations

import math
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tableforge.domain import grid
from tableforge.domain.errors import ValidationFailed
from tableforge.domain.grid_settings import GridSettings

SQUARE = GridSettings(type="square", size=50)
POINTY = GridSettings(type="hex_pointy", size=60, offset_x=7, offset_y=-3)
FLAT = GridSettings(type="hex_flat", size=60, offset_x=-11, offset_y=5)
AXIAL_NEIGHBOURS = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1)]

coords = st.floats(-5000, 5000, allow_nan=False)
grids = st.builds(GridSettings, type=st.sampled_from(["square", "hex_flat", "hex_pointy"]),
                  size=st.floats(8, 1000), offset_x=st.floats(-500, 500), offset_y=st.floats(-500, 500))


# --- cells and snapping --------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(grids, st.integers(-200, 200), st.integers(-200, 200))
def test_a_cell_centre_is_in_its_cell(g: GridSettings, a: int, b: int) -> None:
    assert grid.cell_at(g, *grid.cell_center(g, (a, b))) == (a, b)


@settings(max_examples=300, deadline=None)
@given(grids, coords, coords)
def test_a_point_is_in_the_cell_with_the_nearest_centre(g: GridSettings, x: float, y: float) -> None:
    cell = grid.cell_at(g, x, y)
    cx, cy = grid.cell_center(g, cell)
    mine = math.dist((cx, cy), (x, y))
    around = [(cell[0] + dq, cell[1] + dr) for dq, dr in AXIAL_NEIGHBOURS]
    if not g.is_hex:
        around = [(cell[0] + dc, cell[1] + dr) for dc in (-1, 0, 1) for dr in (-1, 0, 1)]
        # on squares "nearest centre" is the same as "inside", up to the boundaries
        assert abs(cx - x) <= g.size / 2 + 1e-6 and abs(cy - y) <= g.size / 2 + 1e-6
    for other in around:
        assert mine <= math.dist(grid.cell_center(g, other), (x, y)) + 1e-6


@settings(max_examples=300, deadline=None)
@given(grids, coords, coords, st.sampled_from([0.5, 1, 2, 3, 4, 5]))
def test_snapping_is_stable(g: GridSettings, x: float, y: float, cells: float) -> None:
    """A token dropped where it already snapped stays put, and lands near where it was dropped."""
    sx, sy = grid.snap(g, x, y, cells)
    assert grid.snap(g, sx, sy, cells) == pytest.approx((sx, sy), abs=1e-6)
    assert math.dist((sx, sy), (x, y)) <= g.size * 0.75 + 1e-6


@pytest.mark.parametrize(("cells", "expected"), [(1, (75, 25)), (2, (50, 50)), (3, (75, 25)), (4, (50, 50)),
                                                 (0.5, (75, 25)), (0.25, (75, 25))])
def test_square_snap_by_token_size(cells: float, expected: tuple[float, float]) -> None:
    assert grid.snap(SQUARE, 60, 40, cells) == expected


def test_square_snap_with_an_offset_lines_up_with_the_offset_grid() -> None:
    g = GridSettings(size=50, offset_x=10, offset_y=20)
    assert grid.snap(g, 12, 22, 1) == (35, 45)
    assert grid.snap(g, 12, 22, 2) == (10, 20)  # a 2x2 token centres on a grid corner


@pytest.mark.parametrize("g", [POINTY, FLAT], ids=["pointy", "flat"])
def test_hex_snap_odd_on_a_centre_even_on_a_corner_of_three_hexes(g: GridSettings) -> None:
    x, y = grid.cell_center(g, (2, -1))
    assert grid.snap(g, x + 3, y - 4, 1) == grid.cell_center(g, (2, -1))
    assert grid.snap(g, x + 3, y - 4, 3) == grid.cell_center(g, (2, -1))
    vx, vy = grid.snap(g, x + 3, y - 4, 2)
    radius = g.size / math.sqrt(3)
    centres = [grid.cell_center(g, (a, b)) for a in range(-2, 7) for b in range(-5, 4)]
    touching = [c for c in centres if math.isclose(math.dist(c, (vx, vy)), radius, rel_tol=1e-9)]
    assert len(touching) == 3, "an even-sized token centres where three hexes meet"
    assert (vx, vy) in [pytest.approx(c) for c in grid.hex_corners(g, (2, -1))]


def test_hex_corners_are_one_radius_from_the_centre_and_one_side_apart() -> None:
    for g in (POINTY, FLAT):
        corners = grid.hex_corners(g, (0, 0))
        centre = grid.cell_center(g, (0, 0))
        radius = g.size / math.sqrt(3)
        assert all(math.isclose(math.dist(c, centre), radius) for c in corners)
        assert all(math.isclose(math.dist(corners[i], corners[(i + 1) % 6]), radius) for i in range(6))


def test_no_grid_leaves_the_point_alone() -> None:
    assert grid.snap(GridSettings(type="none"), 12.5, -3.25, 2) == (12.5, -3.25)


@pytest.mark.parametrize("cells", [0, 0.2, 21, -1, math.nan, math.inf, True])
def test_token_sizes_out_of_range(cells: float) -> None:
    with pytest.raises(ValidationFailed) as caught:
        grid.snap(SQUARE, 0, 0, cells)
    assert caught.value.code == "bad_token_size" and caught.value.status == 422


# --- distances -----------------------------------------------------------------------------------------

def _hex_bfs(start: tuple[int, int], goal: tuple[int, int], radius: int = 12) -> int:
    seen = {start: 0}
    todo = deque([start])
    while todo:
        here = todo.popleft()
        if here == goal:
            return seen[here]
        for dq, dr in AXIAL_NEIGHBOURS:
            nxt = (here[0] + dq, here[1] + dr)
            if nxt not in seen and max(abs(nxt[0]), abs(nxt[1])) <= radius:
                seen[nxt] = seen[here] + 1
                todo.append(nxt)
    raise AssertionError("unreachable")


@settings(max_examples=150, deadline=None)
@given(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), st.tuples(st.integers(-5, 5), st.integers(-5, 5)))
def test_hex_distance_is_the_number_of_steps(a: tuple[int, int], b: tuple[int, int]) -> None:
    assert grid.hex_distance(a, b) == _hex_bfs(a, b) == grid.hex_distance(b, a)


def test_hex_neighbours_are_one_step_and_one_size_away() -> None:
    for g in (POINTY, FLAT):
        centre = grid.cell_center(g, (3, 4))
        for dq, dr in AXIAL_NEIGHBOURS:
            assert grid.hex_distance((3, 4), (3 + dq, 4 + dr)) == 1
            assert math.isclose(math.dist(centre, grid.cell_center(g, (3 + dq, 4 + dr))), g.size)


def _alternating(dc: int, dr: int) -> int:
    """5-10-5 by walking: diagonal steps first, every second one costing two."""
    cost = 0
    diagonals = min(abs(dc), abs(dr))
    for i in range(diagonals):
        cost += 2 if i % 2 == 1 else 1
    return cost + max(abs(dc), abs(dr)) - diagonals


@settings(max_examples=200, deadline=None)
@given(st.integers(-30, 30), st.integers(-30, 30))
def test_diagonal_rules(dc: int, dr: int) -> None:
    a, b = (4, -2), (4 + dc, -2 + dr)
    assert grid.cell_distance(GridSettings(diagonal="5-5-5"), a, b) == max(abs(dc), abs(dr))
    assert grid.cell_distance(GridSettings(diagonal="5-10-5"), a, b) == _alternating(dc, dr)
    assert grid.cell_distance(GridSettings(diagonal="euclidean"), a, b) == pytest.approx(math.hypot(dc, dr))


def test_5_10_5_counts_diagonals_across_the_legs_of_a_path() -> None:
    g = GridSettings(diagonal="5-10-5")
    legs = [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert grid.path_distance(g, legs) == 4 == grid.cell_distance(g, (0, 0), (3, 3))
    assert sum(grid.cell_distance(g, legs[i], legs[i + 1]) for i in range(3)) == 3, "per leg it would be 3"


def test_measure_in_units() -> None:
    g = GridSettings(size=50, units_per_cell=5, unit="ft", diagonal="5-10-5")
    m = grid.measure(g, [(25, 25), (175, 125)])
    assert (m.cells, m.units, m.text) == (4, 20, "20 ft")
    hexes = GridSettings(type="hex_flat", size=60, units_per_cell=2, unit="m")
    start, end = grid.cell_center(hexes, (0, 0)), grid.cell_center(hexes, (4, -1))
    assert grid.measure(hexes, [start, end]).text == "8 m"
    free = GridSettings(type="none", size=100, units_per_cell=1.5, unit="m")
    assert grid.measure(free, [(0, 0), (60, 80)]).text == "1.5 m"
    assert grid.measure(GridSettings(diagonal="euclidean", size=10), [(5, 5), (15, 15)]).text == "7.1 ft"


@pytest.mark.parametrize("points", [[], [(0, 0)], [(0, 0)] * 65])
def test_measure_needs_two_to_64_points(points: list[tuple[float, float]]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        grid.measure(SQUARE, points)
    assert caught.value.code == "bad_measurement"


# --- settings ------------------------------------------------------------------------------------------

def test_defaults_and_round_trip() -> None:
    default = GridSettings()
    assert default.to_dict() == {"type": "square", "size": 70.0, "offset_x": 0.0, "offset_y": 0.0,
                                 "color": "#000000", "opacity": 0.25, "hidden": False, "units_per_cell": 5.0,
                                 "unit": "ft", "diagonal": "5-5-5"}
    custom = GridSettings.from_dict({"type": "hex_flat", "size": 64, "offset_x": -12.5, "color": "#33AAFF",
                                     "opacity": 0.5, "hidden": True, "units_per_cell": 2, "unit": " m ",
                                     "diagonal": "euclidean"})
    assert custom.color == "#33aaff" and custom.unit == "m" and custom.size == 64.0
    assert GridSettings.from_dict(custom.to_dict()) == custom


def test_a_partial_update_keeps_the_rest() -> None:
    base = GridSettings.from_dict({"type": "hex_pointy", "size": 80})
    moved = GridSettings.from_dict({"offset_x": 5, "offset_y": -5}, base)
    assert (moved.type, moved.size, moved.offset_x, moved.offset_y) == ("hex_pointy", 80.0, 5.0, -5.0)


@pytest.mark.parametrize(("data", "field", "limit"), [
    ({"type": "hexagon"}, "type", "choice"),
    ({"type": 3}, "type", "choice"),
    ({"size": 7.9}, "size", "min"),
    ({"size": 1001}, "size", "max"),
    ({"size": "70"}, "size", "type"),
    ({"size": True}, "size", "type"),
    ({"size": math.nan}, "size", "type"),
    ({"offset_x": 2_000_000}, "offset_x", "max"),
    ({"offset_y": -math.inf}, "offset_y", "type"),
    ({"color": "red"}, "color", "format"),
    ({"color": "#12345"}, "color", "format"),
    ({"color": "#1234567"}, "color", "format"),
    ({"opacity": 1.5}, "opacity", "max"),
    ({"opacity": -0.1}, "opacity", "min"),
    ({"hidden": "yes"}, "hidden", "type"),
    ({"hidden": 1}, "hidden", "type"),
    ({"units_per_cell": 0}, "units_per_cell", "min"),
    ({"units_per_cell": 10_001}, "units_per_cell", "max"),
    ({"unit": ""}, "unit", "min"),
    ({"unit": "x" * 17}, "unit", "max"),
    ({"unit": "f\x07t"}, "unit", "format"),
    ({"unit": 5}, "unit", "type"),
    ({"diagonal": "5-10-10"}, "diagonal", "choice"),
    ({"cell_feet": 5}, "cell_feet", "unknown"),
])
def test_bad_settings_name_the_field_and_the_rule(data: dict, field: str, limit: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        GridSettings.from_dict(data)
    assert caught.value.code == "bad_grid" and caught.value.status == 422
    assert caught.value.details == {"field": field, "limit": limit}
    assert caught.value.message.startswith(f"grid {field}: ")


def test_settings_must_be_an_object() -> None:
    for data in (None, [], "square", 5):
        with pytest.raises(ValidationFailed) as caught:
            GridSettings.from_dict(data)
        assert caught.value.code == "bad_grid"

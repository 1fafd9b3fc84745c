"""Fog geometry (domain/fog.py): rectangles and polygons with their boundary, the order of shapes,
reveal all / hide all, the cap, and the parsing that refuses what the protocol does not allow."""

from __future__ import annotations

import pytest

from tableforge.domain import fog
from tableforge.domain.fog import Fog, FogError, fogged_after, parse_fog, parse_shape

SQUARE = {"type": "rect", "x": 0, "y": 0, "width": 10, "height": 10}
# A "C": the notch (x 4..10, y 3..7) is outside, though inside the bounding box.
C_SHAPE = {"type": "polygon", "points": [[0, 0], [10, 0], [10, 3], [4, 3], [4, 7], [10, 7], [10, 10], [0, 10]]}


def test_rectangle_contains_its_inside_and_its_boundary_only() -> None:
    rect = parse_shape(SQUARE)
    assert rect.contains(5, 5) and rect.contains(0, 0) and rect.contains(10, 10) and rect.contains(10, 3)
    assert not rect.contains(-0.001, 5) and not rect.contains(5, 10.001) and not rect.contains(11, 11)


def test_concave_polygon_by_the_even_odd_rule() -> None:
    c = parse_shape(C_SHAPE)
    assert c.contains(2, 5), "the spine"
    assert c.contains(8, 1) and c.contains(8, 9), "the arms"
    assert not c.contains(7, 5), "the notch, inside the bounding box"
    assert c.contains(4, 5) and c.contains(7, 3) and c.contains(10, 1.5), "edges count as inside"
    assert c.contains(4, 3) and c.contains(0, 10), "and vertices"
    assert not c.contains(10.5, 5) and not c.contains(-1, -1)


def test_triangle_and_a_self_crossing_bow_tie() -> None:
    tri = parse_shape({"type": "polygon", "points": [[0, 0], [10, 0], [0, 10]]})
    assert tri.contains(2, 2) and tri.contains(5, 5) and not tri.contains(6, 6)
    bow = parse_shape({"type": "polygon", "points": [[0, 0], [10, 10], [10, 0], [0, 10]]})
    assert bow.contains(1, 5) and bow.contains(9, 5), "the two lobes"
    assert not bow.contains(5, 1) and not bow.contains(5, 9), "between them, above and below the crossing"
    assert bow.contains(5, 5), "the crossing is on both edges"


def test_the_last_shape_containing_a_point_decides() -> None:
    f = Fog(fog.HIDDEN)
    assert f.fogged(5, 5) and f.fogged(-100, 100), "hide all: everything"
    f.apply(fog.REVEAL, parse_shape(SQUARE))
    assert not f.fogged(5, 5) and f.fogged(20, 20)
    f.apply(fog.HIDE, parse_shape({"type": "rect", "x": 4, "y": 4, "width": 2, "height": 2}))
    assert f.fogged(5, 5) and not f.fogged(1, 1)
    f.apply(fog.REVEAL, parse_shape(C_SHAPE))
    assert f.fogged(5, 5) and not f.fogged(2, 5)
    f.apply(fog.REVEAL_ALL, None)
    assert f.shapes == [] and not f.fogged(5, 5) and not f.fogged(1e6, -1e6)
    f.apply(fog.HIDE_ALL, None)
    assert f.shapes == [] and f.fogged(5, 5) and f.base == fog.HIDDEN


def test_a_change_needs_only_the_state_before_and_its_shape() -> None:
    """What the fog change computes per token equals a full evaluation of the new fog."""
    f = Fog()
    points = [(x, y) for x in range(-2, 13, 3) for y in range(-2, 13, 3)]
    state = {p: f.fogged(*p) for p in points}
    for op, raw in ((fog.HIDE, SQUARE), (fog.REVEAL, C_SHAPE), (fog.HIDE_ALL, None),
                    (fog.REVEAL, {"type": "rect", "x": 3, "y": 3, "width": 3, "height": 3}), (fog.REVEAL_ALL, None)):
        shape = parse_shape(raw) if raw else None
        f.apply(op, shape)
        state = {p: fogged_after(op, shape, state[p], *p) for p in points}
        assert state == {p: f.fogged(*p) for p in points}, op


def test_the_cap_and_the_round_trip() -> None:
    f = Fog()
    for i in range(fog.MAX_SHAPES):
        f.apply(fog.HIDE, parse_shape({"type": "rect", "x": i, "y": 0, "width": 1, "height": 1}))
    with pytest.raises(FogError) as full:
        f.apply(fog.REVEAL, parse_shape(SQUARE))
    assert full.value.code == "fog_full" and len(f.shapes) == fog.MAX_SHAPES
    again = parse_fog(f.to_json())
    assert again.to_json() == f.to_json() and again.fogged(0.5, 0.5) and not again.fogged(0.5, 2)
    f.apply(fog.REVEAL_ALL, None)  # collapses: drawing can start again
    f.apply(fog.HIDE, parse_shape(SQUARE))
    assert len(f.shapes) == 1


@pytest.mark.parametrize("raw", [
    {"type": "circle", "x": 0}, {"type": "rect", "x": 0, "y": 0, "width": 0, "height": 5},
    {"type": "rect", "x": 0, "y": 0, "width": -1, "height": 5},
    {"type": "rect", "x": "0", "y": 0, "width": 1, "height": 1},
    {"type": "rect", "x": 2e6, "y": 0, "width": 1, "height": 1}, {"type": "rect", "x": 0, "y": 0, "width": 1},
    {"type": "rect", "x": 0, "y": 0, "width": 1, "height": 1, "radius": 3},
    {"type": "polygon", "points": [[0, 0], [1, 1]]}, {"type": "polygon", "points": [[0, 0], [1, 1], [2, 2]]},
    {"type": "polygon", "points": [[0, 0]] * 65}, {"type": "polygon", "points": [[0, 0], [1], [2, 2]]},
    {"type": "polygon", "points": [[0, 0], [1, 0], [True, 1]]}, [1, 2], None,
])
def test_bad_shapes_are_refused(raw: object) -> None:
    with pytest.raises(FogError):
        parse_shape(raw)


def test_a_stored_fog_is_checked_too() -> None:
    assert parse_fog(None).to_json() == {"base": "revealed", "shapes": []}
    for bad in ({"base": "dim"}, {"shapes": [{"op": "blur", **SQUARE}]}, {"shapes": [SQUARE] * 201}, [1]):
        with pytest.raises(FogError):
            parse_fog(bad)

"""A scene's grid settings: defaults, partial updates that keep the rest, and refusals by field."""

from __future__ import annotations

import pytest

from tableforge.domain.scenes import DEFAULT_GRID, GridError, grid, visible_to_players


def test_defaults_and_partial_updates() -> None:
    assert grid(None) == DEFAULT_GRID and grid(None) is not DEFAULT_GRID
    hexes = grid({"type": "hex", "size": 70})
    assert hexes["type"] == "hex" and hexes["size"] == 70 and hexes["unit"] == "ft"
    moved = grid({"offset_x": -35}, hexes)
    assert moved["type"] == "hex" and moved["offset_x"] == -35, "what is not named keeps its value"


@pytest.mark.parametrize(("changes", "field"), [
    ({"type": "triangle"}, "type"), ({"size": 3}, "size"), ({"size": 1001}, "size"), ({"size": True}, "size"),
    ({"offset_x": 51}, "offset_x"), ({"offset_y": float("nan")}, "offset_y"), ({"color": "red"}, "color"),
    ({"opacity": 1.5}, "opacity"), ({"distance": 0}, "distance"), ({"unit": "furlongs!!!"}, "unit"),
    ({"snap": True}, "snap"),
])
def test_out_of_range_is_refused_by_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(GridError) as refused:
        grid(changes)
    assert refused.value.field == field


def test_the_visibility_rule() -> None:
    assert visible_to_players(True, False, False, False)
    assert not visible_to_players(False, False, False, False), "another scene"
    assert not visible_to_players(True, True, False, False), "the GM layer"
    assert not visible_to_players(True, False, True, False), "a hidden asset"
    assert not visible_to_players(True, False, False, True), "under fog"

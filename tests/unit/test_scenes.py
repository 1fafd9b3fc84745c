"""A scene's grid settings: defaults, partial updates that keep the rest, and refusals by field."""

from __future__ import annotations

import pytest

from tableforge.domain.errors import ValidationFailed
from tableforge.domain.grid_settings import GridSettings
from tableforge.domain.scenes import grid, visible_to_players


def test_defaults_and_partial_updates() -> None:
    assert grid(None) == GridSettings().to_dict()
    hexes = grid({"type": "hex_flat", "size": 60})
    assert hexes["type"] == "hex_flat" and hexes["size"] == 60 and hexes["unit"] == "ft"
    moved = grid({"offset_x": -35}, hexes)
    assert moved["type"] == "hex_flat" and moved["offset_x"] == -35, "what is not named keeps its value"


@pytest.mark.parametrize(("changes", "field"), [
    ({"type": "triangle"}, "type"), ({"size": 3}, "size"), ({"size": 1001}, "size"), ({"size": True}, "size"),
    ({"offset_y": float("nan")}, "offset_y"), ({"color": "red"}, "color"),
    ({"opacity": 1.5}, "opacity"), ({"units_per_cell": 0}, "units_per_cell"), ({"unit": "x" * 17}, "unit"),
    ({"snap": True}, "snap"),
])
def test_out_of_range_is_refused_by_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        grid(changes)
    assert refused.value.code == "bad_grid" and refused.value.details["field"] == field


def test_the_visibility_rule() -> None:
    assert visible_to_players(True, False, False, False)
    assert not visible_to_players(False, False, False, False), "another scene"
    assert not visible_to_players(True, True, False, False), "the GM layer"
    assert not visible_to_players(True, False, True, False), "a hidden asset"
    assert not visible_to_players(True, False, False, True), "under fog"


def test_a_new_scene_starts_from_the_template_grid_or_the_defaults() -> None:
    from tableforge.domain.scenes import grid, template_grid

    start = template_grid({"grid": {"type": "hex_flat", "size": 50}})
    assert start is not None and grid(None, start)["type"] == "hex_flat" and grid(None, start)["size"] == 50
    assert grid({"size": 80}, start)["type"] == "hex_flat"
    assert template_grid({"grid": {"type": "hexagonal"}}) is None, "a template stored before the checks"
    assert template_grid({"sheet": {}}) is None and template_grid(None) is None

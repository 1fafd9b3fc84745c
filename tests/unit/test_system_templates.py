"""Game-system templates: every official one is something the play tools can use, and a custom one
that is not gets an error naming the place and the problem."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tableforge.domain import dice, system_template
from tableforge.domain.grid_settings import GridSettings
from tableforge.domain.system_template import TemplateInvalid, check_template
from tableforge.services.catalog_seed import OFFICIAL_SYSTEMS

OFFICIAL = {s["name"]: s["template"] for s in OFFICIAL_SYSTEMS}


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_every_official_template_is_usable_by_the_tools(name: str) -> None:
    template = OFFICIAL[name]
    check_template(template)
    presets = template["dice_presets"]
    assert presets, "every system offers dice presets"
    for preset in presets:
        command = dice.parse_command(preset["notation"])
        assert command.label is None, "a preset's name is its label field, not part of the notation"
        result = command.roll()
        assert len(result.totals) == command.repeat
    formula = dice.parse(template["initiative"]["formula"])
    assert formula.roll().total >= 1
    grid = GridSettings.from_dict(template["grid"])
    sheet_keys = {f["key"] for f in template["sheet"]["fields"]}
    bars = template["token_defaults"]["bars"]
    assert 1 <= len(bars) <= system_template.MAX_BARS
    for bar in bars:
        if "sheet_field" in bar:
            assert bar["sheet_field"] in sheet_keys
        assert bar.get("max") is None or 0 <= bar["value"] <= bar["max"]
    assert template["conditions"] and grid.type in ("square", "hex_flat", "hex_pointy", "none")
    assert "show_hp_bar" not in template["token_defaults"] and "grid" not in template["token_defaults"]


def test_the_official_templates_say_what_their_descriptions_promise() -> None:
    neon = OFFICIAL["Neon Runners (d6 dice pool)"]
    pools = [dice.parse_command(p["notation"]) for p in neon["dice_presets"] if "pool" in p["label"]]
    assert pools and all(p.expression.counts_successes for p in pools), "every 5 or 6 is a hit"
    small = next(p for p in neon["dice_presets"] if p["label"] == "Small pool")
    assert small["notation"] == "6d6>=5"
    faces = iter([1, 5, 6, 4, 5, 2])
    assert dice.roll_command(small["notation"], lambda sides: next(faces)).total == 3, "three hits"
    starlane = OFFICIAL["Starlane Skirmish (d10 tactics)"]
    assert GridSettings.from_dict(starlane["grid"]).is_hex, "hex grid"
    delve = OFFICIAL["Dungeon Delve (d20 fantasy)"]
    assert GridSettings.from_dict(delve["grid"]).type == "square"
    assert delve["initiative"]["formula"] == "1d20"
    hp = next(b for b in delve["token_defaults"]["bars"] if b["key"] == "hp")
    assert (hp["value"], hp["max"], hp["sheet_field"]) == (10, 10, "hit_points")
    stats = next(p for p in delve["dice_presets"] if p["label"] == "Roll stats")
    assert dice.parse_command(stats["notation"]).repeat == 6


def test_older_templates_and_unknown_keys_are_left_alone() -> None:
    old = {"sheet": {"fields": []}, "dice_presets": [{"label": "Attack", "notation": "1d20+3"}],
           "token_defaults": {"size": 1, "grid": {"type": "hex", "cell_meters": 2}, "scale": 1.0,
                              "show_hp_bar": True}, "house_rules": {"anything": [1, 2, 3]}}
    check_template(old)
    check_template({})


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    template = copy.deepcopy(OFFICIAL["Dungeon Delve (d20 fantasy)"])
    here: Any = template
    for part in path[:-1]:
        here = here[part]
    here[path[-1]] = value
    return template


@pytest.mark.parametrize(("path", "value", "where", "code", "message_part"), [
    (["dice_presets", 1, "notation"], "2d20kh1+x", "/dice_presets/1/notation", "bad_dice",
     "unexpected 'x' at position 9"),
    (["dice_presets", 1, "notation"], "1d6!>=1", "/dice_presets/1/notation", "bad_dice", "explode"),
    (["dice_presets", 1, "notation"], 20, "/dice_presets/1/notation", "bad_template", "must be a string"),
    (["dice_presets", 0, "label"], "", "/dice_presets/0/label", "bad_template", "label must be a non-empty string"),
    (["dice_presets", 0], "1d20", "/dice_presets/0", "bad_template", "must be an object"),
    (["dice_presets"], [{"label": "x", "notation": "1d6"}] * 51, "/dice_presets", "bad_template", "at most 50"),
    (["initiative", "formula"], "1d20+@dex", "/initiative/formula", "bad_dice", "@dex are not supported"),
    (["initiative", "formula"], "1d20 initiative", "/initiative/formula", "bad_dice", "unexpected 'i'"),
    (["initiative", "formula"], "3#1d20", "/initiative/formula", "bad_dice", "unexpected '#'"),
    (["initiative", "order"], "random", "/initiative/order", "bad_template", "descending, ascending"),
    (["initiative"], "1d20", "/initiative", "bad_template", "must be an object"),
    (["grid", "type"], "hex", "/grid/type", "bad_grid", "grid type: must be one of"),
    (["grid", "diagonal"], "manhattan", "/grid/diagonal", "bad_grid", "5-5-5, 5-10-5, euclidean"),
    (["grid", "cell_feet"], 5, "/grid/cell_feet", "bad_grid", "unknown field"),
    (["grid"], [], "/grid", "bad_grid", "must be an object"),
    (["token_defaults", "size"], 0, "/token_defaults/size", "bad_template", "between 0.25 and 20"),
    (["token_defaults", "scale"], 1000, "/token_defaults/scale", "bad_template", "token scale"),
    (["token_defaults", "bars"], [{"key": f"b{i}", "label": "B"} for i in range(4)], "/token_defaults/bars",
     "bad_template", "at most 3"),
    (["token_defaults", "bars", 1, "key"], "hp", "/token_defaults/bars/1/key", "bad_template", "used twice"),
    (["token_defaults", "bars", 0, "key"], "Hit Points", "/token_defaults/bars/0/key", "bad_template", "lower-case"),
    (["token_defaults", "bars", 0, "visibility"], "players", "/token_defaults/bars/0/visibility", "bad_template",
     "everyone, owners, gm"),
    (["token_defaults", "bars", 0, "max"], 0, "/token_defaults/bars/0/max", "bad_template", "between 1"),
    (["token_defaults", "bars", 0, "value"], 1.5, "/token_defaults/bars/0/value", "bad_template", "whole number"),
    (["token_defaults", "bars", 0, "color"], "red", "/token_defaults/bars/0/color", "bad_template", "#cc3333"),
    (["token_defaults", "bars", 0, "sheet_field"], "mana", "/token_defaults/bars/0/sheet_field", "bad_template",
     "'mana' is not a field of the sheet"),
    (["token_defaults", "bars", 0, "sheet_field"], ["hp"], "/token_defaults/bars/0/sheet_field", "bad_template",
     "not a field of the sheet"),
    (["conditions", 1], "Blinded", "/conditions/1", "bad_template", "listed twice"),
    (["conditions", 0], "x" * 33, "/conditions/0", "bad_template", "at most 32"),
    (["conditions"], "prone", "/conditions", "bad_template", "must be a list"),
])
def test_bad_parts_are_named(path: list[Any], value: Any, where: str, code: str, message_part: str) -> None:
    with pytest.raises(TemplateInvalid) as caught:
        check_template(_with(path, value))
    assert (caught.value.path, caught.value.code) == (where, code)
    assert message_part in caught.value.message, caught.value.message
    assert caught.value.status == 422


def test_a_bad_preset_says_where_in_its_notation() -> None:
    with pytest.raises(TemplateInvalid) as caught:
        check_template({"dice_presets": [{"label": "Attack", "notation": "1d20+5stealth"}]})
    assert caught.value.position == 7
    assert caught.value.details == {"path": "/dice_presets/0/notation", "code": "bad_dice", "position": 7}
    assert caught.value.message.startswith("dice preset 1 (Attack) '1d20+5stealth': unexpected 's' at position 7")

"""Game-system templates over HTTP, on both backends: the official ones carry what the play tools use,
and a custom template the tools could not use is refused with the place and the kind of problem."""

from __future__ import annotations

from typing import Any

from tests.support.client import Api

GOOD: dict[str, Any] = {
    "sheet": {"fields": [{"key": "hp", "label": "HP", "type": "counter"}]},
    "dice_presets": [{"label": "Hits", "notation": "8d6>=5"}, {"label": "Attacks", "notation": "2#1d20+4 sword"}],
    "initiative": {"formula": "1d20+2", "order": "descending"},
    "grid": {"type": "hex_pointy", "units_per_cell": 1.5, "unit": "m"},
    "token_defaults": {"size": 2, "bars": [{"key": "hp", "label": "HP", "value": 12, "max": 12, "color": "#aa2222",
                                            "visibility": "gm", "sheet_field": "hp"}]},
    "conditions": ["prone", "burning"],
}


def _system(unique: str, template: dict[str, Any]) -> dict[str, Any]:
    return {"name": f"Tpl {unique}", "description": "", "category": "test", "complexity": "beginner",
            "is_public": True, "template": template}


async def test_official_templates_carry_the_play_tool_fields(api: Api) -> None:
    listed = (await api.http.get("/api/systems", params={"limit": 100})).json()["systems"]
    official = {s["name"]: s["id"] for s in listed if s["is_official"]}
    starlane = (await api.http.get(f"/api/systems/{official['Starlane Skirmish (d10 tactics)']}")).json()
    assert starlane["template"]["grid"]["type"] == "hex_flat"
    assert starlane["template"]["initiative"]["formula"] == "1d10"
    neon = (await api.http.get(f"/api/systems/{official['Neon Runners (d6 dice pool)']}")).json()
    assert {"label": "Small pool", "notation": "6d6>=5"} in neon["template"]["dice_presets"]
    delve = (await api.http.get(f"/api/systems/{official['Dungeon Delve (d20 fantasy)']}")).json()
    assert delve["template"]["token_defaults"]["bars"][0]["key"] == "hp"


async def test_a_usable_custom_template_is_stored_as_sent(api: Api, unique: str) -> None:
    owner = await api.register("tpl")
    made = await api.http.post("/api/systems", headers=owner.headers, json=_system(unique, GOOD))
    assert made.status_code == 201, made.text
    assert made.json()["template"] == GOOD
    found = (await api.http.get("/api/systems", params={"search": f"Tpl {unique}"})).json()
    assert found["total"] == 1


async def test_a_preset_the_dice_cannot_roll_is_refused_with_its_place(api: Api, unique: str) -> None:
    owner = await api.register("tpl")
    bad = GOOD | {"dice_presets": [GOOD["dice_presets"][0], {"label": "Oops", "notation": "3d6+x"}]}
    r = await api.http.post("/api/systems", headers=owner.headers, json=_system(unique, bad))
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == [{"field": "template", "path": "/dice_presets/1/notation", "code": "bad_dice",
                                 "position": 5, "problem": error["details"][0]["problem"]}]
    assert "dice preset 2 (Oops) '3d6+x': unexpected 'x' at position 5" in error["message"]
    mine = (await api.http.get("/api/systems", params={"search": f"Tpl {unique}"})).json()
    assert mine["total"] == 0, "nothing was stored"


async def test_patching_a_bad_grid_or_formula_is_refused_and_changes_nothing(api: Api, unique: str) -> None:
    owner = await api.register("tpl")
    made = (await api.http.post("/api/systems", headers=owner.headers, json=_system(unique, GOOD))).json()
    url = f"/api/systems/{made['id']}"
    for template, path, code, words in [
        (GOOD | {"grid": {"type": "hexagonal"}}, "/grid/type", "bad_grid", "grid type: must be one of"),
        (GOOD | {"grid": {"size": 2}}, "/grid/size", "bad_grid", "grid size: must be at least 8"),
        (GOOD | {"initiative": {"formula": "1d20+@dex"}}, "/initiative/formula", "bad_dice", "@dex"),
        (GOOD | {"token_defaults": {"bars": [{"key": "hp", "label": "HP", "visibility": "nobody"}]}},
         "/token_defaults/bars/0/visibility", "bad_template", "everyone, owners, gm"),
    ]:
        r = await api.http.patch(url, headers=owner.headers, json={"template": template})
        assert r.status_code == 422, (path, r.text)
        detail = r.json()["error"]["details"][0]
        assert (detail["field"], detail["path"], detail["code"]) == ("template", path, code)
        assert words in r.json()["error"]["message"]
    after = (await api.http.get(url, headers=owner.headers)).json()
    assert after["template"] == GOOD
    # Changing something else leaves a template alone (it is checked only when it is sent).
    renamed = await api.http.patch(url, headers=owner.headers, json={"name": f"Tpl {unique} 2"})
    assert renamed.status_code == 200 and renamed.json()["template"] == GOOD

"""A room's scenes start from its game system's `template.grid` (docs/protocol.md, Scenes), on both
embedded backends: the first scene, and every scene created later; `scene.create`'s own `grid` goes on top."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.client import Api, Ws

DEFAULTS = {"type": "square", "size": 70.0, "offset_x": 0.0, "offset_y": 0.0, "color": "#000000", "opacity": 0.25,
            "hidden": False, "units_per_cell": 5.0, "unit": "ft", "diagonal": "5-5-5"}


def _system(grid: Any) -> dict[str, Any]:
    return {"name": f"Grid {uuid.uuid4().hex[:8]}", "description": "", "category": "test",
            "complexity": "beginner", "is_public": False, "template": {"grid": grid}}


async def test_scenes_start_from_the_systems_grid(api: Api) -> None:
    gm = await api.register("gridgm")
    made = await api.http.post("/api/systems", headers=gm.headers, json=_system(
        {"type": "hex_pointy", "size": 60, "units_per_cell": 1.5, "unit": "m"}))
    assert made.status_code == 201, made.text
    room = await api.room(gm, system_id=made.json()["id"])
    expected = DEFAULTS | {"type": "hex_pointy", "size": 60.0, "units_per_cell": 1.5, "unit": "m"}
    assert (await api.snapshot(gm, room["id"]))["scene"]["grid"] == expected
    ws = await Ws.connect(api.ws_url, gm.token)
    try:
        assert (await ws.request("join", room_id=room["id"]))["type"] == "ack"
        ack = await ws.request("scene.create", room_id=room["id"], name="Cellar")
        assert ack["type"] == "ack" and ack["scene"]["grid"] == expected, ack
        ack = await ws.request("scene.create", room_id=room["id"], name="Roof", grid={"size": 90, "type": "square"})
        assert ack["scene"]["grid"] == expected | {"size": 90.0, "type": "square"}, ack
    finally:
        await ws.close()


async def test_without_a_system_or_with_an_official_one(api: Api) -> None:
    gm = await api.register("gridgm")
    plain = await api.room(gm)
    assert (await api.snapshot(gm, plain["id"]))["scene"]["grid"] == DEFAULTS
    listed = (await api.http.get("/api/systems", params={"limit": 100})).json()["systems"]
    starlane = next(s["id"] for s in listed if s["name"] == "Starlane Skirmish (d10 tactics)")
    template = (await api.http.get(f"/api/systems/{starlane}")).json()["template"]["grid"]
    room = await api.room(gm, system_id=starlane)
    grid = (await api.snapshot(gm, room["id"]))["scene"]["grid"]
    assert grid["type"] == "hex_flat" and all(grid[k] == v for k, v in template.items()), (grid, template)

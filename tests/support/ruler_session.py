"""The ruler and the ping, scripted against one server or two instances: measured by the server
with the scene's grid (the game system's at first, then the GM's change), relayed to whoever views
the scene, GM-only over fog, never stored (no version)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tableforge.domain.grid import measure
from tableforge.domain.grid_settings import GridSettings
from tests.support.hidden_session import Table, seat
from tests.support.waiting import wait_until

GRID = {"type": "square", "size": 50, "units_per_cell": 5, "unit": "ft", "diagonal": "5-10-5"}


async def _frame(ws: Any, etype: str, **match: Any) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        for raw in ws.raw:
            if f'"type":"{etype}"' in raw:
                frame = json.loads(raw)
                if all(frame.get(k) == v for k, v in match.items()):
                    found.append(frame)
                    return True
        return False

    await wait_until(arrived, 20.0, f"{etype} {match}")
    return found[0]


def _over_fog(frame: dict[str, Any]) -> bool:
    """A ruler or ping frame at the fogged point (1050, 1050)."""
    if frame.get("type") == "board.ping":
        return (frame.get("x"), frame.get("y")) == (1050, 1050)
    return frame.get("type") == "ruler" and [1050, 1050] in (frame.get("points") or [])


async def ruler_session(gm_api: Any, player_api: Any) -> None:
    system = {"name": f"Ruler {uuid.uuid4().hex[:8]}", "description": "", "category": "test",
              "complexity": "beginner", "is_public": False, "template": {"grid": GRID}}
    t = await seat(gm_api, player_api, system)
    try:
        await _play(t)
    finally:
        await t.close()


async def _play(t: Table) -> None:
    g, a, b, s, room = t.g, t.a, t.b, t.s, t.room_id
    scene = str((await a.request("join", room_id=room))["scene_id"])
    path = [[25, 25], [175, 175]]  # three diagonal steps: 5-10-5 counts 4 cells
    ack = await a.request("ruler", room_id=room, points=path)
    assert ack == {"type": "ack", "id": ack["id"], "cells": 4.0, "units": 20.0, "text": "20 ft"}, ack
    for ws in (g, b, s):
        got = await _frame(ws, "ruler", user_id=t.alice.user["id"])
        assert (got["points"], got["text"], got["scene_id"], "version" in got) == (path, "20 ft", scene, False), got
    await a.request("ruler", room_id=room, points=[])
    put_away = await _frame(b, "ruler", points=[])
    assert "text" not in put_away and put_away["user_id"] == t.alice.user["id"]

    # The GM switches the scene to hexes: the next ruler measures with them.
    upd = await g.request("scene.update", room_id=room, scene_id=scene, grid={"type": "hex_flat", "size": 60})
    assert upd["type"] == "ack", upd
    hexes = GridSettings.from_dict(upd["scene"]["grid"])
    # Alice's board shows the hexes (her instance has the update; the GM's ack does not wait for that)
    await _frame(a, "scene.updated", version=upd["version"])
    far = [[0, 0], [300, 120], [500, 40]]
    expected = measure(hexes, [(float(x), float(y)) for x, y in far])
    ack = await a.request("ruler", room_id=room, points=far)
    assert (ack["cells"], ack["text"]) == (expected.cells, expected.text) and ack["text"] != "20 ft", ack
    assert (await _frame(g, "ruler", points=far))["text"] == expected.text

    # Pings; a GM's over fog reach GMs only (the GMs here: none but the sender, so players see nothing).
    await a.request("board.ping", room_id=room, x=40, y=60)
    got = await _frame(b, "board.ping", user_id=t.alice.user["id"])
    assert (got["x"], got["y"], got["scene_id"]) == (40, 60, scene)
    fog = await g.request("fog.change", room_id=room, scene_id=scene, op="hide",
                          shape={"type": "rect", "x": 1000, "y": 1000, "width": 100, "height": 100})
    assert fog["type"] == "ack", fog
    assert (await g.request("ruler", room_id=room, points=[[10, 10], [1050, 1050]]))["type"] == "ack"
    assert (await g.request("board.ping", room_id=room, x=1050, y=1050))["type"] == "ack"
    assert (await g.request("board.ping", room_id=room, x=7, y=8))["type"] == "ack"
    await _frame(b, "board.ping", x=7, y=8)  # sent after the fogged ones: they would have arrived first
    for ws in (a, b, s):
        # By content, not by the text "1050" anywhere: an id or a time in an unrelated frame can hold it.
        fogged = [raw for raw in ws.raw if _over_fog(json.loads(raw))]
        assert not fogged, f"a GM's frame over fog reached a player: {fogged}"

    # Refusals.
    spectator = await s.request("ruler", room_id=room, points=path)
    assert spectator["type"] == "error" and spectator["code"] == "spectator_read_only", spectator
    one = await a.request("ruler", room_id=room, points=[[1, 1]])
    assert one["type"] == "error" and one["code"] == "bad_measurement", one
    many = await a.request("ruler", room_id=room, points=[[i, i] for i in range(65)])
    assert many["type"] == "error" and many["code"] == "invalid_message", many
    other = await a.request("ruler", room_id=room, points=path, scene_id=str(uuid.uuid4()))
    assert other["type"] == "error" and other["code"] == "scene_not_found", other

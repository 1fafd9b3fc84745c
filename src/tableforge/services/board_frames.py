"""The ruler and the ping: ephemeral frames like `pointer`, relayed through the broker, never
stored, no version (docs/protocol.md, "Ruler and ping").

A ruler is measured here, with the grid of the scene it is on (domain/grid.measure), so everyone
reads the same distance; the grid comes from the room's token index (realtime/room_tokens.py), not
a database query per frame. Routing is the pointer's: whoever views the scene; a GM's frame on
another scene than the players', or touching fog, reaches the GMs of that scene only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from tableforge.db.schema import scenes
from tableforge.domain import events as ev
from tableforge.domain.audience import View
from tableforge.domain.errors import NotFound, ValidationFailed
from tableforge.domain.grid import MAX_WAYPOINTS, Measurement, measure
from tableforge.domain.grid_settings import GridSettings
from tableforge.domain.roles import require_actor
from tableforge.realtime.connection import Connection
from tableforge.services.runtime import Runtime
from tableforge.services.tokens import fogged, load_board, relay

Point = tuple[float, float]


async def _scene_of(rt: Runtime, view: View, room_id: str, scene_id: str | None) -> tuple[str, str]:
    """(the scene the frame is on, the players' scene): a GM's given or viewed scene; a player's is
    always the players' scene (another one is scene_not_found, as if it did not exist)."""
    players_scene = await rt.room_tokens.players_scene(room_id, lambda: load_board(rt, room_id))
    if not view.is_gm:
        if scene_id is not None and scene_id != players_scene:
            raise NotFound("no such scene in this room", code="scene_not_found")
        return players_scene, players_scene
    return scene_id or view.scene_id or players_scene, players_scene


async def _audience(rt: Runtime, view: View, room_id: str, scene: str, players_scene: str,
                    points: Sequence[Point]) -> str:
    audience = f"g@{scene}"
    if scene == players_scene:
        hidden = False
        if view.is_gm:
            for x, y in points:
                if await fogged(rt, room_id, scene, x, y):
                    hidden = True
                    break
        if not hidden:
            audience += ";p"
    return audience


async def _grid(rt: Runtime, room_id: str, scene_id: str) -> GridSettings:
    async def read() -> GridSettings:
        async with rt.db.read() as conn:
            row = (await conn.execute(sa.select(scenes.c.grid).where(scenes.c.id == scene_id,
                                                                     scenes.c.room_id == room_id))).first()
        if row is None:
            raise NotFound("no such scene in this room", code="scene_not_found")
        return GridSettings.from_dict(row[0]) if row[0] else GridSettings()

    return await rt.room_tokens.grid(room_id, scene_id, lambda: load_board(rt, room_id), read)


async def ruler(rt: Runtime, view: View, room_id: str, scene_id: str | None, points: list[Point],
                sender: Connection) -> Measurement | None:
    """Relays `ruler {user_id, scene_id, points, cells, units, text}`; no points: the ruler is put
    away (`ruler {user_id, scene_id, points: []}`). Returns the measurement."""
    require_actor(view.role)
    if len(points) == 1 or len(points) > MAX_WAYPOINTS:
        raise ValidationFailed(f"a ruler has 2 to {MAX_WAYPOINTS} points (none: put away)",
                               code="bad_measurement", details=[{"field": "points", "problem": "2 to 64 points"}])
    scene, players_scene = await _scene_of(rt, view, room_id, scene_id)
    payload: dict[str, object] = {"user_id": view.user_id, "scene_id": scene, "points": [list(p) for p in points]}
    found = None
    if points:
        found = measure(await _grid(rt, room_id, scene), points)
        payload |= {"cells": found.cells, "units": found.units, "text": found.text}
    audience = await _audience(rt, view, room_id, scene, players_scene, points)
    relay(rt, view.user_id, room_id, ev.RULER, payload, sender, audience)
    return found


async def ping(rt: Runtime, view: View, room_id: str, x: float, y: float, sender: Connection) -> None:
    """Relays `board.ping {user_id, scene_id, x, y}` (draws everyone's eye to a spot)."""
    require_actor(view.role)
    scene, players_scene = await _scene_of(rt, view, room_id, None)
    audience = await _audience(rt, view, room_id, scene, players_scene, [(x, y)])
    relay(rt, view.user_id, room_id, ev.BOARD_PING, {"user_id": view.user_id, "scene_id": scene, "x": x, "y": y},
          sender, audience)

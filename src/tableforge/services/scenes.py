"""Scenes and fog of war: GM actions, each one change of the room event log (db/scene_log.py),
published to its audience. Listing scenes is a read: every scene for GMs, the players' one for
everyone else."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tableforge.db.changes import (
    UNCHANGED,
    ActivateScene,
    ChangeFog,
    CreateScene,
    RemoveScene,
    StoredEvent,
    UpdateScene,
)
from tableforge.db.scene_log import scene_json
from tableforge.db.schema import game_assets, game_rooms, scenes
from tableforge.domain.roles import GM, require_gm
from tableforge.realtime.connection import Connection
from tableforge.services import replies, rooms
from tableforge.services.runtime import Runtime


async def _store(rt: Runtime, room_id: str, change: Any, sender: Connection | None) -> StoredEvent[Any]:
    stored: StoredEvent[Any] = await rt.events.append(room_id, change)
    await rt.hub.publish(room_id, stored.version, stored.ts, sender, stored.body, stored.routing)
    return stored


async def create(rt: Runtime, role: str, user_id: str, room_id: str, name: str, grid: dict[str, Any] | None,
                 map_asset_id: str | None, sender: Connection | None = None) -> tuple[dict[str, Any], int]:
    require_gm(role)
    stored = await _store(rt, room_id, CreateScene(user_id, replies.new_id(), name, grid, map_asset_id,
                                                   replies.now()), sender)
    return stored.result, stored.version


async def update(rt: Runtime, role: str, user_id: str, room_id: str, scene_id: str, name: str | None,
                 grid: dict[str, Any] | None, map_asset_id: Any = UNCHANGED, sender: Connection | None = None
                 ) -> tuple[dict[str, Any], int]:
    require_gm(role)
    stored = await _store(rt, room_id, UpdateScene(user_id, scene_id, name, grid, map_asset_id), sender)
    return stored.result, stored.version


async def remove(rt: Runtime, role: str, user_id: str, room_id: str, scene_id: str,
                 sender: Connection | None = None) -> int:
    require_gm(role)
    return (await _store(rt, room_id, RemoveScene(user_id, scene_id), sender)).version


async def activate(rt: Runtime, role: str, user_id: str, room_id: str, scene_id: str,
                   sender: Connection | None = None) -> int:
    """Move the players (and spectators) to `scene_id`."""
    require_gm(role)
    return (await _store(rt, room_id, ActivateScene(user_id, scene_id), sender)).version


async def fog(rt: Runtime, role: str, user_id: str, room_id: str, scene_id: str, op: str,
              shape: dict[str, Any] | None, sender: Connection | None = None) -> int:
    require_gm(role)
    return (await _store(rt, room_id, ChangeFog(user_id, scene_id, op, shape), sender)).version


async def listing(rt: Runtime, room_id: str, user: dict[str, Any]) -> dict[str, Any]:
    """`GET /api/rooms/{id}/scenes`: summaries (no grid, no fog), in their order."""
    query = (sa.select(scenes.c.id, scenes.c.name, scenes.c.position, scenes.c.map_asset_id, scenes.c.created_at,
                       scenes.c.grid, scenes.c.fog, game_assets.c.width.label("map_width"),
                       game_assets.c.height.label("map_height"), game_assets.c.sha256.label("map_sha256"),
                       game_assets.c.type.label("map_type"), game_rooms.c.players_scene_id)
             .select_from(scenes.join(game_rooms, game_rooms.c.id == scenes.c.room_id)
                          .outerjoin(game_assets, game_assets.c.id == scenes.c.map_asset_id))
             .where(scenes.c.room_id == room_id).order_by(scenes.c.position))
    async with rt.db.read() as conn:
        role = await rooms.require_member(conn, room_id, user)
        rows = (await conn.execute(query)).mappings().all()
    players_scene = str(rows[0]["players_scene_id"]) if rows else None
    shown = [scene_json(r, full=False) for r in rows if role == GM or str(r["id"]) == players_scene]
    return {"scenes": shown, "players_scene_id": players_scene, "total": len(shown)}

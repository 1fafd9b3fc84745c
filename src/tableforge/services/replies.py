"""Replies: rows to the JSON bodies of docs/protocol.md (HTTP replies, acks, events). Plain dicts,
encoded once with orjson, no model objects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import RowMapping

from tableforge.domain.wire import EXTENSIONS as EXTENSIONS
from tableforge.domain.wire import asset_url as asset_url
from tableforge.domain.wire import iso as iso
from tableforge.domain.wire import message as message
from tableforge.domain.wire import now_ms as now_ms
from tableforge.domain.wire import public_user as public_user
from tableforge.domain.wire import token as token


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> datetime:
    return datetime.now(UTC)






def user(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """The caller's own account (GET /api/users/me)."""
    return public_user(row) | {"is_admin": bool(row["is_admin"])}




def system(row: RowMapping | dict[str, Any], *, with_template: bool) -> dict[str, Any]:
    out = {
        "id": str(row["id"]),
        "owner_id": str(row["owner_id"]) if row["owner_id"] else None,
        "name": row["name"],
        "description": row["description"],
        "category": row["category"],
        "complexity": row["complexity"],
        "is_public": bool(row["is_public"]),
        "is_official": bool(row["is_official"]),
        "download_count": row["download_count"],
        "rating": round(float(row["rating_avg"]), 3),
        "rating_count": row["rating_count"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }
    if "usage_count" in row:
        out["usage_count"] = int(row["usage_count"] or 0)
    if with_template:
        out["template"] = row["template"]
    return out


def room(row: RowMapping | dict[str, Any], *, is_gm: bool) -> dict[str, Any]:
    out = {
        "id": str(row["id"]),
        "name": row["name"],
        "gm_id": str(row["gm_id"]),
        "game_system_id": str(row["game_system_id"]) if row["game_system_id"] else None,
        "is_active": bool(row["is_active"]),
        "version": int(row["version"]),
        "created_at": iso(row["created_at"]),
        "players_scene_id": str(row["players_scene_id"]) if row.get("players_scene_id") else None,
    }
    if is_gm:
        out["invite_code"] = row["invite_code"]
        out["spectator_invite_code"] = row.get("spectator_invite_code")
    return out


def player(row: RowMapping) -> dict[str, Any]:
    return {
        "user": public_user(row, "user_id"),
        "role": row["role"],
        "is_online": bool(row["is_online"]),
        "joined_at": iso(row["joined_at"]),
    }


def asset(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "room_id": str(row["room_id"]),
        "uploader_id": str(row["uploader_id"]) if row["uploader_id"] else None,
        "name": row["name"],
        "type": row["type"],
        "url": asset_url(row["sha256"], row["type"]),
        "width": row["width"],
        "height": row["height"],
        "size": row["size"],
        "sha256": row["sha256"],
        "created_at": iso(row["created_at"]),
        "hidden": bool(row.get("hidden", False)),
    }


MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}




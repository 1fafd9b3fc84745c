"""The JSON shapes of the rows that room events carry (tokens, messages, a player's public profile).

Plain dicts, encoded once with orjson. They live below both the services (which answer with them)
and the event log (which stores them inside event bodies), so both build them the same way.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Protocol


class Row(Protocol):
    """A database row by column name, or a dict (nothing here needs more)."""

    def __getitem__(self, key: str, /) -> Any: ...


def now_ms() -> float:
    return round(time.time() * 1000, 3)


def iso(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def public_user(row: Row, id_column: str = "id") -> dict[str, Any]:
    """What other players see of a user."""
    return {
        "id": str(row[id_column]),
        "username": row["username"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "profile_image_url": row["profile_image_url"],
    }


def token(row: Row) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "asset_id": str(row["asset_id"]),
        "owner_id": str(row["owner_id"]) if row["owner_id"] else None,
        "x": float(row["x"]),
        "y": float(row["y"]),
        "rotation": float(row["rotation"]),
        "scale": float(row["scale"]),
        "z_index": int(row["z_index"]),
        "version": int(row["version"]),
        "scene_id": str(row["scene_id"]),
        "hidden": bool(row["hidden"]),
    }


def message(row: Row) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "user_id": str(row["user_id"]) if row["user_id"] else None,
        "username": row["username"],
        "kind": row["kind"],
        "text": row["text"],
        "roll": row["roll"],
        "version": int(row["version"]),
        "created_at": iso(row["created_at"]),
        "visibility": row["visibility"] or "room",
        "to": list(row["to_users"]) if row["to_users"] else None,
    }


EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp", "gif": "gif"}


def asset_url(sha256: str, kind: str) -> str:
    return f"/assets/{sha256}.{EXTENSIONS.get(kind, kind)}"


def scene_map(asset: Row | None, asset_url: str | None) -> dict[str, Any] | None:
    """A scene's background, or None (`asset_url`: its public URL, built by the caller)."""
    if asset is None or asset_url is None:
        return None
    return {"asset_id": str(asset["id"]), "url": asset_url, "width": int(asset["width"]),
            "height": int(asset["height"])}


def scene(row: Row, map_: dict[str, Any] | None, *, full: bool) -> dict[str, Any]:
    """A scene: its summary, and with `full` its grid and fog too."""
    out = {"id": str(row["id"]), "name": row["name"], "position": int(row["position"]), "map": map_,
           "created_at": iso(row["created_at"])}
    if full:
        out["grid"] = row["grid"]
        out["fog"] = row["fog"] or {"base": "revealed", "shapes": []}
    return out

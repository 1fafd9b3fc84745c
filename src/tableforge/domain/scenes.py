"""Scenes: their limits, their grid settings, and who may see a token on them. Pure: no I/O.

A scene's `grid` holds every field of `GridSettings`, checked, so that the play tools (snapping,
measuring) can rely on each being present and in range. A partial update keeps the fields it does
not name.
"""

from __future__ import annotations

from typing import Any, Final

from tableforge.domain.errors import ValidationFailed
from tableforge.domain.grid_settings import GridSettings

MAX_SCENES: Final = 100
NAME_MAX_CHARS: Final = 100


def grid(changes: dict[str, Any] | None, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """`current` (or the defaults) with `changes` applied and checked (domain/grid_settings.py);
    raises ValidationFailed `bad_grid`."""
    base = GridSettings.from_dict(current) if current else GridSettings()
    return (base if changes is None else GridSettings.from_dict(changes, base)).to_dict()


def template_grid(template: Any) -> dict[str, Any] | None:
    """The grid a new scene starts from: its game system's `template.grid` over the defaults, or
    None (the defaults) when there is none, or when a template stored before the checks existed
    holds one that no longer passes them (a scene is never refused for its system's fault)."""
    if not isinstance(template, dict) or not isinstance(template.get("grid"), dict):
        return None
    try:
        return GridSettings.from_dict(template["grid"]).to_dict()
    except ValidationFailed:
        return None


def visible_to_players(on_players_scene: bool, hidden: bool, asset_hidden: bool, fogged: bool) -> bool:
    """The one rule (docs/protocol.md, "What visible to players means")."""
    return on_players_scene and not hidden and not asset_hidden and not fogged

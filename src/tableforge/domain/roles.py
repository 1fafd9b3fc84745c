"""Who may do what in a room."""

from __future__ import annotations

from typing import Literal

from tableforge.domain.errors import Forbidden

Role = Literal["gm", "player", "spectator"]
GM: Role = "gm"
PLAYER: Role = "player"
SPECTATOR: Role = "spectator"  # read-only: sees what players see, cannot act


def can_change_token(role: str, user_id: str, owner_id: str) -> bool:
    """Players change the tokens they own; the GM changes any."""
    return role == GM or user_id == owner_id


def require_gm(role: str | None) -> None:
    if role == SPECTATOR:
        require_actor(role)
    if role != GM:
        raise Forbidden("only the room's game master may do this", code="not_gm")


def require_actor(role: str | None) -> None:
    """Anything but reading: refused to spectators, with one code for every action."""
    if role == SPECTATOR:
        raise Forbidden("spectators may watch but not act", code="spectator_read_only")

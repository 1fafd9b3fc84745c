"""Who may do what in a room."""

from __future__ import annotations

from typing import Literal

from tableforge.domain.errors import Forbidden

Role = Literal["gm", "player"]
GM: Role = "gm"
PLAYER: Role = "player"


def can_change_token(role: str, user_id: str, owner_id: str) -> bool:
    """Players change the tokens they own; the GM changes any."""
    return role == GM or user_id == owner_id


def require_gm(role: str | None) -> None:
    if role != GM:
        raise Forbidden("only the room's game master may do this", code="not_gm")

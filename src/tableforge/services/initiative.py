"""The room's turn order (`initiative` messages): one versioned event per change, stored with the
audiences of db/initiative_log.py."""

from __future__ import annotations

from typing import Any

from tableforge.db.changes import ChangeInitiative
from tableforge.domain.roles import GM, require_actor
from tableforge.realtime.connection import Connection
from tableforge.services import replies
from tableforge.services.runtime import Runtime


async def change(rt: Runtime, user_id: str, role: str, room_id: str, op: str, token_id: str | None,
                 entry_id: str | None, value: int | None, if_version: int | None,
                 sender: Connection | None = None) -> tuple[dict[str, Any], int]:
    """(the tracker as the caller sees it, the room version)."""
    require_actor(role)
    stored = await rt.events.append(room_id, ChangeInitiative(user_id, op, token_id, entry_id, value, if_version,
                                                              role == GM, replies.new_id()))
    await rt.hub.publish(room_id, stored.version, stored.ts, sender, stored.body, stored.routing)
    return stored.result, stored.version

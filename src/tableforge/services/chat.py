"""Chat and dice: both land in the room's log and go out as room events.

The message row and its event are one change of the room event log (`PostMessage`): one
statement on PostgreSQL, a transaction on SQLite; a closed or missing room says which.
"""

from __future__ import annotations

from typing import Any

from tableforge.db.event_log import PostMessage
from tableforge.domain import dice
from tableforge.realtime.connection import Connection
from tableforge.services import replies
from tableforge.services.runtime import Runtime


async def _log(rt: Runtime, user_id: str, username: str, room_id: str, text: str, roll: dict[str, Any] | None,
               sender: Connection | None) -> tuple[dict[str, Any], int]:
    stored = await rt.events.append(room_id, PostMessage(user_id, username, replies.new_id(), text, roll,
                                                         replies.now()))
    await rt.hub.publish(room_id, stored.version, stored.ts, sender, stored.body)
    return stored.result, stored.version


async def send(rt: Runtime, user_id: str, username: str, room_id: str, text: str,
               sender: Connection | None = None) -> tuple[dict[str, Any], int]:
    return await _log(rt, user_id, username, room_id, text, None, sender)


async def roll(rt: Runtime, user_id: str, username: str, room_id: str, notation: str,
               sender: Connection | None = None, label: str | None = None) -> tuple[dict[str, Any], int]:
    """`notation` is what follows `/roll` (repeat, expression, label); refused (422 `bad_dice`) before
    anything is rolled or stored."""
    result = dice.roll_command(notation, label=label)
    return await _log(rt, user_id, username, room_id, result.text(), result.to_dict(), sender)

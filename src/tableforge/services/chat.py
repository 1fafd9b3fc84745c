"""Chat and dice: both land in the room's log and go out as room events, to their audience.

The message row and its event are one change of the room event log (`PostMessage`): one
statement on PostgreSQL, a transaction on SQLite (and for whispers, whose recipients are checked
to be members inside it); a closed or missing room says which. Who a message reaches is decided
here, once (domain/audience.py), and stored with it: the snapshot and `join {since}` honour it.
- a whisper (`to`): the sender and the named users, nobody else (not the other GMs);
- a roll: `room` everyone, `gm` the roller and the GMs, `self` the roller only.
"""

from __future__ import annotations

from typing import Any

from tableforge.db.changes import PostMessage
from tableforge.domain import audience as aud
from tableforge.domain import dice, limits
from tableforge.domain.errors import ValidationFailed
from tableforge.domain.roles import require_actor
from tableforge.realtime.connection import Connection
from tableforge.services import replies
from tableforge.services.runtime import Runtime

VISIBILITIES = ("room", "gm", "self")


async def _log(rt: Runtime, user_id: str, username: str, room_id: str, text: str, roll: dict[str, Any] | None,
               sender: Connection | None, visibility: str = "room", to: tuple[str, ...] | None = None
               ) -> tuple[dict[str, Any], int]:
    if to:
        audience: str | None = aud.join(*(aud.user(u) for u in dict.fromkeys((user_id, *to))))
    elif visibility == "gm":
        audience = aud.join(aud.GMS, aud.user(user_id))
    elif visibility == "self":
        audience = aud.user(user_id)
    else:
        audience = None
    stored = await rt.events.append(room_id, PostMessage(user_id, username, replies.new_id(), text, roll,
                                                         replies.now(), "whisper" if to else visibility, audience,
                                                         to))
    await rt.hub.publish(room_id, stored.version, stored.ts, sender, stored.body, stored.routing)
    return stored.result, stored.version


async def send(rt: Runtime, user_id: str, username: str, room_id: str, text: str,
               sender: Connection | None = None, *, role: str = "player", to: list[str] | None = None
               ) -> tuple[dict[str, Any], int]:
    """chat.send; `to`: a whisper to these members (1..20, the sender may be among them)."""
    require_actor(role)
    recipients = None
    if to is not None:
        recipients = tuple(dict.fromkeys(to))
        if not 1 <= len(recipients) <= limits.WHISPER_MAX_RECIPIENTS:
            raise ValidationFailed(f"a whisper goes to 1..{limits.WHISPER_MAX_RECIPIENTS} users",
                                   code="invalid_message", details=[{"field": "to", "problem": "1..20 users"}])
    return await _log(rt, user_id, username, room_id, text, None, sender, to=recipients)


async def roll(rt: Runtime, user_id: str, username: str, room_id: str, notation: str,
               sender: Connection | None = None, *, role: str = "player", visibility: str = "room"
               ) -> tuple[dict[str, Any], int]:
    require_actor(role)
    result = dice.roll(notation).to_dict()
    text = f"{result['notation']} = {result['total']}"
    return await _log(rt, user_id, username, room_id, text, result, sender, visibility)

"""The room snapshot's validator, read cheaply: `GET /api/rooms/{id}` answers 304 from one query.

A snapshot is fully determined by what changes it and the caller's role (the GM also sees the
invite code). Every stored room event (tokens, chat, dice, assets, presence) raises the room's
`version`; the changes that do not — a member joining by invite, the room closing, presence
reset at start-up, a member's account being deleted — change the member count, the online
count or `is_active`. So (version, members, online, is_active, role) identifies the snapshot,
and the ETag built from it is never the same for two different snapshots.

The snapshot body itself is not cached: it would have to be invalidated on every token move,
and revalidation answers the repeated reads with one indexed query and no body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tableforge.db.schema import game_rooms, room_players
from tableforge.domain.roles import GM
from tableforge.services.runtime import Runtime

FORMAT = "r1"  # bump when the snapshot's shape changes, so old ETags stop matching


@dataclass(frozen=True, slots=True)
class RoomState:
    version: int
    members: int
    online: int
    is_active: bool
    is_gm: bool

    @property
    def etag(self) -> str:
        # Weak: it names the snapshot's contents, not a byte-exact encoding of them.
        role = "gm" if self.is_gm else "player"
        return f'W/"{FORMAT}-{self.version}-{self.members}-{self.online}-{int(self.is_active)}-{role}"'


async def room_state(rt: Runtime, room_id: str, user_id: str) -> RoomState | None:
    """The validator state for `user_id` reading `room_id`, or None when the room does not exist
    or the user is not a member (the caller then takes the full path, which raises the error)."""
    members = sa.select(sa.func.count()).where(room_players.c.room_id == game_rooms.c.id).scalar_subquery()
    online = (sa.select(sa.func.count())
              .where(room_players.c.room_id == game_rooms.c.id, room_players.c.is_online.is_(True))
              .scalar_subquery())
    role = (sa.select(room_players.c.role)
            .where(room_players.c.room_id == game_rooms.c.id, room_players.c.user_id == user_id)
            .scalar_subquery())
    query = sa.select(game_rooms.c.version, game_rooms.c.is_active, members, online, role).where(
        game_rooms.c.id == room_id)
    async with rt.db.read() as conn:
        row = (await conn.execute(query)).first()
    if row is None or row[4] is None:
        return None
    return RoomState(int(row[0]), int(row[2]), int(row[3]), bool(row[1]), row[4] == GM)


def state_of(snapshot: dict[str, Any]) -> RoomState:
    """The same state, taken from a snapshot (read in one transaction, so it matches its body)."""
    room = snapshot["room"]
    players = snapshot["players"]
    return RoomState(int(room["version"]), len(players), sum(1 for p in players if p["is_online"]),
                     bool(room["is_active"]), "invite_code" in room)

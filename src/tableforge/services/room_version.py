"""The room snapshot's validator, read cheaply: `GET /api/rooms/{id}` answers 304 from one query.

A snapshot is fully determined by what changes it, the caller's role (the GM also sees the
invite codes, hidden tokens and assets), the scene shown and the caller (whispers and secret rolls
reach some users only). Every stored room event (tokens, chat, dice, assets, presence, scenes, fog)
raises the room's `version`; the changes that do not — a member joining by invite, the room closing,
presence reset at start-up, a member's account being deleted — change the member count, the online
count or `is_active`. So (version, members, online, is_active, role, scene, user) identifies the
snapshot, and the ETag built from it is never the same for two different snapshots.

The snapshot body itself is not cached: it would have to be invalidated on every token move,
and revalidation answers the repeated reads with one indexed query and no body.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tableforge.db.schema import game_rooms, room_players
from tableforge.domain.roles import GM
from tableforge.services.runtime import Runtime

FORMAT = "r2"  # bump when the snapshot's shape changes, so old ETags stop matching


@dataclass(frozen=True, slots=True)
class RoomState:
    version: int
    members: int
    online: int
    is_active: bool
    is_gm: bool
    scene_id: str = ""
    user_id: str = ""

    @property
    def etag(self) -> str:
        # Weak: it names the snapshot's contents, not a byte-exact encoding of them. The user is a
        # short hash (the ETag is private data, but needs not carry an id).
        role = "gm" if self.is_gm else "player"
        who = hashlib.sha256(self.user_id.encode()).hexdigest()[:12]
        return (f'W/"{FORMAT}-{self.version}-{self.members}-{self.online}-{int(self.is_active)}-{role}'
                f'-{self.scene_id.replace("-", "")}-{who}"')


async def room_state(rt: Runtime, room_id: str, user_id: str, scene_id: str | None = None) -> RoomState | None:
    """The validator state for `user_id` reading `room_id` (`scene_id`: a GM's choice), or None when
    the room does not exist or the user is not a member (the caller then takes the full path, which
    raises the error)."""
    members = sa.select(sa.func.count()).where(room_players.c.room_id == game_rooms.c.id).scalar_subquery()
    online = (sa.select(sa.func.count())
              .where(room_players.c.room_id == game_rooms.c.id, room_players.c.is_online.is_(True))
              .scalar_subquery())
    role = (sa.select(room_players.c.role)
            .where(room_players.c.room_id == game_rooms.c.id, room_players.c.user_id == user_id)
            .scalar_subquery())
    query = sa.select(game_rooms.c.version, game_rooms.c.is_active, members, online, role,
                      game_rooms.c.players_scene_id).where(game_rooms.c.id == room_id)
    async with rt.db.read() as conn:
        row = (await conn.execute(query)).first()
    if row is None or row[4] is None:
        return None
    is_gm = row[4] == GM
    shown = scene_id if is_gm and scene_id else str(row[5])
    return RoomState(int(row[0]), int(row[2]), int(row[3]), bool(row[1]), is_gm, shown, user_id)


def state_of(snapshot: dict[str, Any], user_id: str = "") -> RoomState:
    """The same state, taken from a snapshot (read in one transaction, so it matches its body)."""
    room = snapshot["room"]
    players = snapshot["players"]
    return RoomState(int(room["version"]), len(players), sum(1 for p in players if p["is_online"]),
                     bool(room["is_active"]), "invite_code" in room, str(snapshot.get("scene_id") or ""), user_id)

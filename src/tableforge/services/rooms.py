"""Rooms: creation from a catalog system, invites, membership, the snapshot, closing."""

from __future__ import annotations

import secrets
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db.event_log import MEMBERSHIP, Membership
from tableforge.db.schema import UUID, game_rooms, room_players, scenes
from tableforge.domain import events as ev
from tableforge.domain import limits
from tableforge.domain import scenes as scene_rules
from tableforge.domain.errors import Conflict, Forbidden, NotFound
from tableforge.domain.fog import Fog
from tableforge.domain.roles import GM, PLAYER, SPECTATOR, require_gm
from tableforge.services import replies, snapshots, systems
from tableforge.services.runtime import Runtime

_INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at the table


def _invite_code(length: int = limits.INVITE_CODE_LENGTH) -> str:
    return "".join(secrets.choice(_INVITE_ALPHABET) for _ in range(length))


# Spectator codes are longer than player codes, so that one code can never name both kinds.
SPECTATOR_CODE_LENGTH = limits.INVITE_CODE_LENGTH + 2


# Built once: building the statement per call cost more CPU than SQLAlchemy's cached compile.
_ROLE = sa.select(room_players.c.role).where(room_players.c.room_id == sa.bindparam("room_id"),
                                             room_players.c.user_id == sa.bindparam("user_id"))


async def role_of(conn: AsyncConnection, room_id: str, user_id: str) -> str | None:
    return (await conn.execute(_ROLE, {"room_id": room_id, "user_id": user_id})).scalar()


async def require_member(conn: AsyncConnection, room_id: str, user: dict[str, Any]) -> str:
    role = await role_of(conn, room_id, user["id"])
    if role is None:
        exists = (await conn.execute(sa.select(game_rooms.c.id).where(game_rooms.c.id == room_id))).first()
        if exists is None:
            raise NotFound("no such room", code="room_not_found")
        raise Forbidden("you are not a member of this room", code="not_member")
    return str(role)


async def require_open_member(conn: AsyncConnection, room_id: str, user_id: str) -> str:
    """The caller's role in an open room (one statement), else the error that says why not."""
    return (await open_membership(conn, room_id, user_id))[0]


async def open_membership(conn: AsyncConnection, room_id: str, user_id: str) -> tuple[str, str]:
    """(the caller's role, the players' scene) in an open room, else the error that says why not."""
    row = (await conn.execute(MEMBERSHIP, {"room_id": room_id, "user_id": user_id})).first()
    return _open(None if row is None else (row[0], bool(row[1]), str(row[2])))


async def open_membership_of(rt: Runtime, room_id: str, user_id: str) -> tuple[str, str]:
    """`open_membership` read through the event log (on PostgreSQL: a prepared statement on a kept
    connection, no pool checkout: `join` reads it every time)."""
    return _open(await rt.events.membership(room_id, user_id))


def _open(row: Membership | None) -> tuple[str, str]:
    if row is None:
        raise NotFound("no such room", code="room_not_found")
    if row[0] is None:
        raise Forbidden("you are not a member of this room", code="not_member")
    if not row[1]:
        raise Conflict("the room is closed", code="room_closed")
    return str(row[0]), str(row[2])


async def require_scene(conn: AsyncConnection, room_id: str, scene_id: str) -> None:
    found = (await conn.execute(sa.select(scenes.c.id).where(scenes.c.id == scene_id, scenes.c.room_id == room_id))
             ).first()
    if found is None:
        raise NotFound("no such scene in this room", code="scene_not_found")


async def create(rt: Runtime, user: dict[str, Any], name: str, game_system_id: str | None) -> dict[str, Any]:
    now = replies.now()
    for _ in range(5):
        scene_id = replies.new_id()
        values = {"id": replies.new_id(), "name": name, "gm_id": user["id"], "game_system_id": game_system_id,
                  "invite_code": _invite_code(), "is_active": True, "version": 0, "created_at": now,
                  "players_scene_id": scene_id, "spectator_invite_code": _invite_code(SPECTATOR_CODE_LENGTH),
                  "fog_free": True}
        try:
            async with rt.db.write() as conn:
                template = None
                if game_system_id is not None:
                    template = await systems.ensure_usable(conn, game_system_id, user)
                await conn.execute(sa.insert(game_rooms).values(**values))
                await conn.execute(sa.insert(scenes).values(
                    id=scene_id, room_id=values["id"], name="Scene 1", position=0,
                    grid=scene_rules.grid(None, scene_rules.template_grid(template)),
                    fog=Fog().to_json(), fog_count=0, fog_version=0, created_at=now))
                await conn.execute(sa.insert(room_players).values(
                    room_id=values["id"], user_id=user["id"], role=GM, is_online=False, joined_at=now))
        except IntegrityError:
            continue  # an invite code collision (1 in 32^10): draw another
        if game_system_id is not None:
            await systems.changed(rt, game_system_id)  # its download and usage counts moved
        return replies.room(values, is_gm=True) | {"role": GM}
    raise RuntimeError("could not draw a unique invite code")


async def list_mine(rt: Runtime, user: dict[str, Any]) -> list[dict[str, Any]]:
    async with rt.db.read() as conn:
        rows = (await conn.execute(
            sa.select(game_rooms, room_players.c.role)
            .join(room_players, room_players.c.room_id == game_rooms.c.id)
            .where(room_players.c.user_id == user["id"])
            .order_by(game_rooms.c.created_at.desc())
        )).mappings().all()
    return [replies.room(r, is_gm=r["role"] == GM) | {"role": r["role"]} for r in rows]


async def join_by_invite(rt: Runtime, user: dict[str, Any], invite_code: str) -> dict[str, Any]:
    """A player code makes a player (and a spectator a player); a spectator code makes a spectator.
    Nobody is ever demoted by a code."""
    code = invite_code.strip().upper()
    column = game_rooms.c.spectator_invite_code if len(code) == SPECTATOR_CODE_LENGTH else game_rooms.c.invite_code
    async with rt.db.write() as conn:
        row = (await conn.execute(
            sa.select(game_rooms).where(column == code, game_rooms.c.is_active.is_(True))
        )).mappings().first()
        if row is None:
            raise NotFound("no open room has that invite code", code="invite_not_found")
        joins_as = SPECTATOR if column is game_rooms.c.spectator_invite_code else PLAYER
        role = await role_of(conn, str(row["id"]), user["id"])
        if role is None:
            role = joins_as
            await conn.execute(sa.insert(room_players).values(
                room_id=row["id"], user_id=user["id"], role=role, is_online=False, joined_at=replies.now()))
        elif role == SPECTATOR and joins_as == PLAYER:
            role = PLAYER
            await conn.execute(sa.update(room_players).where(room_players.c.room_id == row["id"],
                                                             room_players.c.user_id == user["id"]).values(role=PLAYER))
    await players_changed(rt, str(row["id"]))
    return replies.room(row, is_gm=role == GM) | {"role": role}


async def snapshot(rt: Runtime, room_id: str, user: dict[str, Any], scene_id: str | None = None) -> dict[str, Any]:
    """The room as the caller may see it (services/snapshots.py); `scene_id` for GMs only: for the
    others, any scene but theirs does not exist."""
    role, shown = await rt.snapshots.as_member(room_id, user["id"], scene_id)
    if scene_id is not None and role != GM and shown["scene_id"] != scene_id:
        raise NotFound("no such scene in this room", code="scene_not_found")
    return shown


async def read_snapshot(conn: AsyncConnection, room_id: str, *, is_gm: bool, scene_id: str | None = None,
                        user_id: str = "") -> dict[str, Any]:
    return await snapshots.read_snapshot(conn, room_id, is_gm=is_gm, scene_id=scene_id, user_id=user_id)


def _players_query(room_id: str, online: bool | None = None) -> sa.Select[Any]:
    return snapshots.players_query(room_id, online)


# Built once: every change to a room's players drops its cached list, so the list is read often.
_PLAYERS = snapshots.players_query(sa.bindparam("room_id", type_=UUID))


def players_key(room_id: str) -> str:
    return f"players:{room_id}"


async def players_changed(rt: Runtime, room_id: str) -> None:
    """After a committed change to a room's players (a member joined, came online, left, or the
    room closed): drop the cached list on every instance."""
    await rt.cache.delete(players_key(room_id))


async def players(rt: Runtime, room_id: str, user: dict[str, Any], online: bool | None) -> list[dict[str, Any]]:
    """The room's players (cached; every change to them drops the entry). The cached list is also
    the membership check: only a caller missing from it costs a query, to say why."""

    async def load() -> list[dict[str, Any]]:
        rows = await rt.events.read_rows(_PLAYERS, {"room_id": room_id})
        return [replies.player(cast(RowMapping, r)) for r in rows]  # an asyncpg Record reads alike

    everyone: list[dict[str, Any]] = await rt.cache.get_or_load(players_key(room_id), load, kind="room")
    if not any(p["user"]["id"] == user["id"] for p in everyone):
        async with rt.db.read() as conn:
            await require_member(conn, room_id, user)  # raises not_member / room_not_found
        everyone = await load()  # a member the cached list predates (cannot outlive the delete)
    return [p for p in everyone if online is None or p["is_online"] is online]


async def close(rt: Runtime, room_id: str, user: dict[str, Any]) -> None:
    async with rt.db.write() as conn:
        require_gm(await require_member(conn, room_id, user))
        await conn.execute(sa.update(game_rooms).where(game_rooms.c.id == room_id).values(is_active=False))
        await conn.execute(sa.update(room_players).where(room_players.c.room_id == room_id)
                           .values(is_online=False))
        system_id = (await conn.execute(sa.select(game_rooms.c.game_system_id)
                                        .where(game_rooms.c.id == room_id))).scalar()
    if system_id is not None:
        await systems.changed(rt, str(system_id))  # one room fewer uses it
    await players_changed(rt, room_id)
    await rt.hub.publish_control({"kind": ev.ROOM_CLOSED, "room_id": room_id})

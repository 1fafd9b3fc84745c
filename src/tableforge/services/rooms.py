"""Rooms: creation from a catalog system, invites, membership, the snapshot, closing."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db.engine import timed
from tableforge.db.schema import board_tokens, game_assets, game_rooms, room_messages, room_players, users
from tableforge.domain import events as ev
from tableforge.domain import limits
from tableforge.domain.errors import Conflict, Forbidden, NotFound
from tableforge.domain.roles import GM, PLAYER, require_gm
from tableforge.services import replies, systems
from tableforge.services.runtime import Runtime

_INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at the table


def _invite_code() -> str:
    return "".join(secrets.choice(_INVITE_ALPHABET) for _ in range(limits.INVITE_CODE_LENGTH))


async def role_of(conn: AsyncConnection, room_id: str, user_id: str) -> str | None:
    return (await conn.execute(
        sa.select(room_players.c.role).where(room_players.c.room_id == room_id,
                                             room_players.c.user_id == user_id)
    )).scalar()


async def require_member(conn: AsyncConnection, room_id: str, user: dict[str, Any]) -> str:
    role = await role_of(conn, room_id, user["id"])
    if role is None:
        exists = (await conn.execute(sa.select(game_rooms.c.id).where(game_rooms.c.id == room_id))).first()
        if exists is None:
            raise NotFound("no such room", code="room_not_found")
        raise Forbidden("you are not a member of this room", code="not_member")
    return str(role)


# Role and is_active in one statement; the LEFT JOIN tells a non-member whether the room exists.
_MEMBERSHIP = (
    sa.select(room_players.c.role, game_rooms.c.is_active)
    .select_from(game_rooms.outerjoin(room_players, sa.and_(room_players.c.room_id == game_rooms.c.id,
                                                            room_players.c.user_id == sa.bindparam("user_id"))))
    .where(game_rooms.c.id == sa.bindparam("room_id"))
)


async def require_open_member(conn: AsyncConnection, room_id: str, user_id: str) -> str:
    """The caller's role in an open room (one statement), else the error that says why not."""
    row = (await conn.execute(_MEMBERSHIP, {"room_id": room_id, "user_id": user_id})).first()
    if row is None:
        raise NotFound("no such room", code="room_not_found")
    if row[0] is None:
        raise Forbidden("you are not a member of this room", code="not_member")
    if not row[1]:
        raise Conflict("the room is closed", code="room_closed")
    return str(row[0])


async def create(rt: Runtime, user: dict[str, Any], name: str, game_system_id: str | None) -> dict[str, Any]:
    now = replies.now()
    for _ in range(5):
        values = {"id": replies.new_id(), "name": name, "gm_id": user["id"], "game_system_id": game_system_id,
                  "invite_code": _invite_code(), "is_active": True, "version": 0, "created_at": now}
        try:
            async with rt.db.write() as conn:
                if game_system_id is not None:
                    await systems.ensure_usable(conn, game_system_id, user)
                await conn.execute(sa.insert(game_rooms).values(**values))
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
    async with rt.db.write() as conn:
        row = (await conn.execute(
            sa.select(game_rooms).where(game_rooms.c.invite_code == invite_code.strip().upper(),
                                        game_rooms.c.is_active.is_(True))
        )).mappings().first()
        if row is None:
            raise NotFound("no open room has that invite code", code="invite_not_found")
        role = await role_of(conn, str(row["id"]), user["id"])
        if role is None:
            role = PLAYER
            await conn.execute(sa.insert(room_players).values(
                room_id=row["id"], user_id=user["id"], role=PLAYER, is_online=False, joined_at=replies.now()))
    await players_changed(rt, str(row["id"]))
    return replies.room(row, is_gm=role == GM) | {"role": role}


async def snapshot(rt: Runtime, room_id: str, user: dict[str, Any]) -> dict[str, Any]:
    async with rt.db.read() as conn:
        role = await require_member(conn, room_id, user)
        return await read_snapshot(conn, room_id, is_gm=role == GM)


async def read_snapshot(conn: AsyncConnection, room_id: str, *, is_gm: bool) -> dict[str, Any]:
    """Room, players, assets, tokens and recent chat, with a `version` that matches the contents.

    On PostgreSQL this is one statement (one round trip, one MVCC snapshot, so no transaction is
    needed): each list is aggregated with `json_agg` in its own subquery, never by joining the lists
    to each other (a join of assets and tokens would multiply rows, assets x tokens). SQLite runs the
    parts as separate queries inside `Database.read()`'s read transaction, which is just as
    consistent and costs no network round trips."""
    async with timed("snapshot"):
        if conn.dialect.name == "postgresql":
            return await _read_snapshot_pg(conn, room_id, is_gm=is_gm)
        return await _read_snapshot_parts(conn, room_id, is_gm=is_gm)


def _assets_query(room_id: str) -> sa.Select[Any]:
    return sa.select(game_assets).where(game_assets.c.room_id == room_id).order_by(game_assets.c.created_at)


def _tokens_query(room_id: str) -> sa.Select[Any]:
    return (sa.select(board_tokens).where(board_tokens.c.room_id == room_id)
            .order_by(board_tokens.c.z_index, board_tokens.c.created_at))


def _messages_query(room_id: str) -> sa.Select[Any]:
    """The newest messages (newest first: the caller reverses them)."""
    return (
        sa.select(room_messages, users.c.username)
        .join(users, users.c.id == room_messages.c.user_id, isouter=True)
        .where(room_messages.c.room_id == room_id)
        .order_by(room_messages.c.version.desc())
        .limit(limits.CHAT_HISTORY_IN_SNAPSHOT)
    )


def _json_list(query: sa.Select[Any], *order: str) -> sa.ScalarSelect[Any]:
    """`(SELECT coalesce(json_agg(row ORDER BY …), '[]') FROM (query) row)`: a list in one column."""
    sub = query.order_by(None).subquery() if query._limit_clause is None else query.subquery()
    agg = sa.func.json_agg(aggregate_order_by(sub.table_valued(), *(sub.c[name] for name in order)))
    return sa.select(sa.func.coalesce(agg, sa.literal_column("'[]'::json"))).scalar_subquery()


def _snapshot_statement(room_id: Any) -> sa.Select[Any]:
    return sa.select(
        game_rooms,
        sa.type_coerce(_json_list(_players_query(room_id), "joined_at"), postgresql.JSON).label("tf_players"),
        sa.type_coerce(_json_list(_assets_query(room_id), "created_at"), postgresql.JSON).label("tf_assets"),
        sa.type_coerce(_json_list(_tokens_query(room_id), "z_index", "created_at"),
                       postgresql.JSON).label("tf_tokens"),
        sa.type_coerce(_json_list(_messages_query(room_id), "version"), postgresql.JSON).label("tf_messages"),
    ).where(game_rooms.c.id == room_id)


def _parse_times(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    """JSON carries timestamps as text; the shapes format datetimes, so the output is the same on
    both databases."""
    for row in rows:
        for key in keys:
            if row.get(key) is not None:
                row[key] = datetime.fromisoformat(row[key])
    return rows


async def _read_snapshot_pg(conn: AsyncConnection, room_id: str, *, is_gm: bool) -> dict[str, Any]:
    row = (await conn.execute(_SNAPSHOT_PG, {"room_id": room_id})).mappings().first()
    if row is None:
        raise NotFound("no such room", code="room_not_found")
    return {
        "room": replies.room(row, is_gm=is_gm),
        "players": [replies.player(cast(RowMapping, p)) for p in _parse_times(row["tf_players"], "joined_at")],
        "assets": [replies.asset(a) for a in _parse_times(row["tf_assets"], "created_at")],
        "tokens": [replies.token(t) for t in row["tf_tokens"]],
        "messages": [replies.message(m) for m in _parse_times(row["tf_messages"], "created_at")],
    }


async def _read_snapshot_parts(conn: AsyncConnection, room_id: str, *, is_gm: bool) -> dict[str, Any]:
    room = (await conn.execute(sa.select(game_rooms).where(game_rooms.c.id == room_id))).mappings().first()
    if room is None:
        raise NotFound("no such room", code="room_not_found")
    players = (await conn.execute(_players_query(room_id))).mappings().all()
    assets = (await conn.execute(_assets_query(room_id))).mappings().all()
    tokens = (await conn.execute(_tokens_query(room_id))).mappings().all()
    messages = (await conn.execute(_messages_query(room_id))).mappings().all()
    return {
        "room": replies.room(room, is_gm=is_gm),
        "players": [replies.player(p) for p in players],
        "assets": [replies.asset(a) for a in assets],
        "tokens": [replies.token(t) for t in tokens],
        "messages": [replies.message(m) for m in reversed(messages)],
    }


def _players_query(room_id: str, online: bool | None = None) -> sa.Select[Any]:
    query = (
        sa.select(room_players.c.user_id, room_players.c.role, room_players.c.is_online,
                  room_players.c.joined_at, users.c.username, users.c.first_name, users.c.last_name,
                  users.c.profile_image_url)
        .join(users, users.c.id == room_players.c.user_id)
        .where(room_players.c.room_id == room_id)
        .order_by(room_players.c.joined_at)
    )
    if online is not None:
        query = query.where(room_players.c.is_online.is_(online))
    return query


# Built once: constructing this statement (four subqueries, table-valued rows) cost more CPU than
# running it. Reused, SQLAlchemy's compiled cache serves it and only `room_id` is bound per call.
_SNAPSHOT_PG = _snapshot_statement(sa.bindparam("room_id"))


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
        async with rt.db.read() as conn:
            return [replies.player(r) for r in (await conn.execute(_players_query(room_id))).mappings().all()]

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

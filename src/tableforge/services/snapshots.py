"""The room snapshot: one scene's state as one caller may see it (docs/protocol.md, room snapshot).

What is in it depends on who reads it: a GM reads any scene (the players' scene unless they ask),
every token of it, every asset, and the scenes' list; a player or spectator reads the players' scene
only, and only the tokens players see (`hidden`, `asset_hidden` and `fogged` false on the token's
own row, so no geometry here), the assets that are not hidden, and the messages that reached them
(the room's, their whispers and secret rolls, and for GMs the rolls made for GMs).

On PostgreSQL this is one statement (one round trip, one MVCC snapshot, so no transaction is
needed): each list is aggregated with `json_agg` in its own subquery, never by joining the lists
to each other (a join of assets and tokens would multiply rows, assets x tokens). The scene shown is
`coalesce(:scene_id, the room's players' scene)`, read inside the same statement. For the HTTP
snapshot (`OneStatementSnapshots`) the statement also reads the caller's role, and what they may see
follows from it, so the membership check and the snapshot are one prepared statement on the event
log's kept connections (no pool checkout, no transaction, no SQLAlchemy execution). SQLite runs the
parts as separate queries inside `Database.read()`'s read transaction, which is just as consistent
and costs no network round trips.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db.engine import Database, timed
from tableforge.db.event_log import EventLog
from tableforge.db.scene_log import scene_json
from tableforge.db.schema import UUID, board_tokens, game_assets, game_rooms, room_messages, room_players, scenes, users
from tableforge.domain import initiative, limits, token_fields
from tableforge.domain.errors import Forbidden, NotFound
from tableforge.domain.roles import GM
from tableforge.services import replies

_ROOM = sa.bindparam("room_id", type_=UUID)
_SCENE = sa.bindparam("scene_id", type_=UUID)
_IS_GM = sa.bindparam("is_gm", type_=sa.Boolean)
_USER = sa.bindparam("user_id", type_=UUID)
# `%u:<user id>%`: the messages addressed to the caller
_USER_AUDIENCE: sa.BindParameter[str] = sa.bindparam("user_audience", type_=sa.Text)


def _players_scene() -> sa.ScalarSelect[Any]:
    return sa.select(game_rooms.c.players_scene_id).where(game_rooms.c.id == _ROOM).scalar_subquery()


def _shown_scene(scene: sa.ColumnElement[Any] = _SCENE) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(scene, _players_scene())


def _role() -> sa.ScalarSelect[Any]:
    """The caller's role in the room (NULL: not a member)."""
    return (sa.select(room_players.c.role)
            .where(room_players.c.room_id == _ROOM, room_players.c.user_id == _USER).scalar_subquery())


def players_query(room_id: Any, online: bool | None = None) -> sa.Select[Any]:
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


def _assets_query(is_gm: sa.ColumnElement[bool]) -> sa.Select[Any]:
    return (sa.select(game_assets)
            .where(game_assets.c.room_id == _ROOM, sa.or_(is_gm, game_assets.c.hidden.is_(False)))
            .order_by(game_assets.c.created_at))


def _tokens_query(is_gm: sa.ColumnElement[bool], shown: sa.ColumnElement[Any]) -> sa.Select[Any]:
    seen = sa.and_(board_tokens.c.hidden.is_(False), board_tokens.c.fogged.is_(False),
                   board_tokens.c.asset_hidden.is_(False))
    return (sa.select(board_tokens)
            .where(board_tokens.c.scene_id == shown, board_tokens.c.room_id == _ROOM, sa.or_(is_gm, seen))
            .order_by(board_tokens.c.z_index, board_tokens.c.created_at))


def _messages_query(is_gm: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The newest messages that reached the caller (newest first: the caller reverses them)."""
    reached = sa.or_(room_messages.c.audience.is_(None), sa.and_(is_gm, room_messages.c.visibility == "gm"),
                     room_messages.c.audience.like(_USER_AUDIENCE))
    return (
        sa.select(room_messages, users.c.username)
        .join(users, users.c.id == room_messages.c.user_id, isouter=True)
        .where(room_messages.c.room_id == _ROOM, reached)
        .order_by(room_messages.c.version.desc())
        .limit(limits.CHAT_HISTORY_IN_SNAPSHOT)
    )


def _scenes_query(is_gm: sa.ColumnElement[bool], shown: sa.ColumnElement[Any], *, only_shown: bool
                  ) -> sa.Select[Any]:
    """The room's scenes with their maps: the shown one, or every one a GM may list."""
    query = (sa.select(scenes.c.id, scenes.c.name, scenes.c.position, scenes.c.map_asset_id, scenes.c.grid,
                       scenes.c.fog, scenes.c.created_at, game_assets.c.width.label("map_width"),
                       game_assets.c.height.label("map_height"), game_assets.c.sha256.label("map_sha256"),
                       game_assets.c.type.label("map_type"))
             .select_from(scenes.outerjoin(game_assets, game_assets.c.id == scenes.c.map_asset_id))
             .where(scenes.c.room_id == _ROOM))
    if only_shown:
        return query.where(scenes.c.id == shown)
    return query.where(sa.or_(is_gm, scenes.c.id == _players_scene())).order_by(scenes.c.position)


def _json_list(query: sa.Select[Any], *order: str) -> sa.ScalarSelect[Any]:
    """`(SELECT coalesce(json_agg(row ORDER BY …), '[]') FROM (query) row)`: a list in one column."""
    sub = query.order_by(None).subquery() if query._limit_clause is None else query.subquery()
    agg = sa.func.json_agg(aggregate_order_by(sub.table_valued(), *(sub.c[name] for name in order)))
    return sa.select(sa.func.coalesce(agg, sa.literal_column("'[]'::json"))).scalar_subquery()


def snapshot_statement(room_id: Any, *, as_member: bool = False) -> sa.Select[Any]:
    """The snapshot in one statement. Parameters: `room_id`, `user_audience`, and `is_gm` and
    `scene_id` as given; `as_member`: `user_id` and `scene_id` instead of `is_gm`: the caller's role
    (`tf_role`, NULL for a non-member) decides what they may see, and `scene_id` counts for GMs only."""
    is_gm: sa.ColumnElement[bool] = _IS_GM
    shown = _shown_scene()
    extra: list[sa.ColumnElement[Any]] = []
    if as_member:
        role = _role()
        is_gm = sa.func.coalesce(role == GM, sa.false())
        shown = _shown_scene(sa.cast(sa.case((is_gm, _SCENE)), UUID))
        extra.append(role.label("tf_role"))

    def listed(query: sa.Select[Any], *order: str) -> Any:
        return sa.type_coerce(_json_list(query, *order), postgresql.JSON)

    return sa.select(
        game_rooms,
        *extra,
        listed(players_query(_ROOM), "joined_at").label("tf_players"),
        listed(_assets_query(is_gm), "created_at").label("tf_assets"),
        listed(_tokens_query(is_gm, shown), "z_index", "created_at").label("tf_tokens"),
        listed(_messages_query(is_gm), "version").label("tf_messages"),
        listed(_scenes_query(is_gm, shown, only_shown=True), "position").label("tf_scene"),
        listed(_scenes_query(is_gm, shown, only_shown=False), "position").label("tf_scenes"),
    ).where(game_rooms.c.id == room_id)


# Built once: constructing this statement (several subqueries, table-valued rows) cost more CPU than
# running it. Reused, SQLAlchemy's compiled cache serves `_SNAPSHOT_PG` and only the parameters are
# bound per call; the event log prepares `_SNAPSHOT_AS_MEMBER` once per kept connection.
_SNAPSHOT_PG = snapshot_statement(_ROOM)
_SNAPSHOT_AS_MEMBER = snapshot_statement(_ROOM, as_member=True)


def _parse_times(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    """JSON carries timestamps as text; the shapes format datetimes, so the output is the same on
    both databases."""
    for row in rows:
        for key in keys:
            if row.get(key) is not None:
                row[key] = datetime.fromisoformat(row[key])
    return rows


def _params(room_id: str, is_gm: bool, scene_id: str | None, user_id: str) -> dict[str, Any]:
    return {"room_id": room_id, "scene_id": scene_id if is_gm else None, "is_gm": is_gm,
            "user_audience": f"%u:{user_id}%" if user_id else "-"}


def _seen_as(token: dict[str, Any], is_gm: bool, user_id: str) -> dict[str, Any]:
    """The token's fields the caller may see (domain/token_fields.py)."""
    return token_fields.for_level(token, token_fields.level_of(is_gm, user_id, token["owner_id"]))


def _turn_order(room: RowMapping | dict[str, Any], tokens: list[Any], is_gm: bool) -> dict[str, Any]:
    """*extension*: the turn order; players' entries are those of the tokens in their snapshot."""
    doc = initiative.load(room.get("initiative"))
    return doc if is_gm else initiative.for_players(doc, {str(t["id"]) for t in tokens})


def _shape(room: RowMapping | dict[str, Any], players: list[Any], assets: list[Any], tokens: list[Any],
           messages: list[Any], shown: list[Any], listed: list[Any], is_gm: bool, user_id: str = ""
           ) -> dict[str, Any]:
    if not shown:
        raise NotFound("no such scene in this room", code="scene_not_found")
    scene = scene_json(shown[0])
    return {
        "room": replies.room(room, is_gm=is_gm),
        "players": [replies.player(p) for p in players],
        "assets": [replies.asset(a) for a in assets],
        "tokens": [_seen_as(replies.token(t), is_gm, user_id) for t in tokens],
        "initiative": _turn_order(room, tokens, is_gm),
        "messages": [replies.message(m) for m in messages],
        "scene_id": scene["id"],
        "scene": scene,
        "scenes": [scene_json(s, full=False) for s in listed],
    }


async def read_snapshot(conn: AsyncConnection, room_id: str, *, is_gm: bool, scene_id: str | None = None,
                        user_id: str = "") -> dict[str, Any]:
    """Room, players, assets, one scene with its tokens, and recent chat, as `user_id` (a GM or not)
    may see them, with a `version` that matches the contents. `scene_id`: GMs only (None: the
    players' scene); an unknown one is scene_not_found."""
    params = _params(room_id, is_gm, scene_id, user_id)
    async with timed("snapshot"):
        if conn.dialect.name == "postgresql":
            row = (await conn.execute(_SNAPSHOT_PG, params)).mappings().first()
            if row is None:
                raise NotFound("no such room", code="room_not_found")
            return _shape_row(row, is_gm, user_id)
        room = (await conn.execute(sa.select(game_rooms).where(game_rooms.c.id == room_id))).mappings().first()
        if room is None:
            raise NotFound("no such room", code="room_not_found")

        async def rows(query: sa.Select[Any]) -> list[Any]:
            return list((await conn.execute(query, params)).mappings().all())

        players = list((await conn.execute(players_query(room_id))).mappings().all())
        shown = _shown_scene()
        return _shape(room, players, await rows(_assets_query(_IS_GM)), await rows(_tokens_query(_IS_GM, shown)),
                      list(reversed(await rows(_messages_query(_IS_GM)))),
                      await rows(_scenes_query(_IS_GM, shown, only_shown=True)),
                      await rows(_scenes_query(_IS_GM, shown, only_shown=False)), is_gm, user_id)


class SnapshotReader(Protocol):
    """The HTTP snapshot with its membership check (which form: chosen by the wiring)."""

    async def as_member(self, room_id: str, user_id: str, scene_id: str | None = None) -> tuple[str, dict[str, Any]]:
        """(the caller's role, the snapshot as they may see it); room_not_found, not_member;
        `scene_id` counts for GMs only."""


class OneStatementSnapshots:
    """PostgreSQL: the membership check and the snapshot in one statement (`_SNAPSHOT_AS_MEMBER`), a
    prepared statement on the event log's kept connections (`EventLog.read_rows`)."""

    def __init__(self, events: EventLog) -> None:
        self.events = events

    async def as_member(self, room_id: str, user_id: str, scene_id: str | None = None) -> tuple[str, dict[str, Any]]:
        params = {"room_id": room_id, "user_id": user_id, "scene_id": scene_id, "user_audience": f"%u:{user_id}%"}
        async with timed("snapshot"):
            row = await self.events.read_row(_SNAPSHOT_AS_MEMBER, params)
        if row is None:
            raise NotFound("no such room", code="room_not_found")
        role = _member(row["tf_role"])
        return role, _shape_row(cast(RowMapping, row), role == GM, user_id)  # an asyncpg Record reads alike


class TransactionalSnapshots:
    """SQLite: the membership (the event log's read), then the snapshot's parts in one read transaction."""

    def __init__(self, events: EventLog, db: Database) -> None:
        self.events = events
        self.db = db

    async def as_member(self, room_id: str, user_id: str, scene_id: str | None = None) -> tuple[str, dict[str, Any]]:
        found = await self.events.membership(room_id, user_id)
        if found is None:
            raise NotFound("no such room", code="room_not_found")
        role = _member(found[0])
        async with self.db.read() as conn:
            return role, await read_snapshot(conn, room_id, is_gm=role == GM, scene_id=scene_id, user_id=user_id)


def _member(role: str | None) -> str:
    if role is None:
        raise Forbidden("you are not a member of this room", code="not_member")
    return str(role)


def _shape_row(row: RowMapping, is_gm: bool, user_id: str) -> dict[str, Any]:
    """The one-statement form's row (`snapshot_statement`) in its public shape."""
    return _shape(row, [cast(RowMapping, p) for p in _parse_times(row["tf_players"], "joined_at")],
                  _parse_times(row["tf_assets"], "created_at"), row["tf_tokens"],
                  _parse_times(row["tf_messages"], "created_at"), _parse_times(row["tf_scene"], "created_at"),
                  _parse_times(row["tf_scenes"], "created_at"), is_gm, user_id)

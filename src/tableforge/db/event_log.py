"""The room event log: every stored room change goes through `EventLog.append`.

A change is described as data (`AddToken`, `MoveToken`, … below), with its guards (owner unless
GM, `if_version`) as fields. `append` applies it and stores its event(s) atomically, with the room
version taken in the same unit: `UPDATE game_rooms SET version = version + 1 … RETURNING version`
locks the room row, so changes to one room serialize and versions rise by exactly one with no gaps,
on any number of instances. It returns the `StoredEvent` (the body exactly as clients receive it,
kept in a bounded per-room history for `join {since}`), which the caller then publishes.

Two implementations, chosen once by the wiring from the database URL:
- `TransactionalEventLog` (here): BEGIN; take the version; change the row(s) with the guards in
  the WHERE clause; store the event; COMMIT. Used on SQLite, and on PostgreSQL for the rare
  changes and to explain a refusal with the precise domain error.
- `PgEventLog` (`db/pg_event_log.py`): the hot changes (move, add token, chat/dice, presence) in
  one autocommit statement, falling back to this class when the statement changes nothing.

Why dataclasses and not one method per change: the guards travel with the change, so both
implementations read the same description, the fallback is `super().append(room_id, change)`, and
the services never need to know which database they are on.

One body encoder (db/event_body.py). The changes are in db/changes.py; the board's (tokens,
assets) in db/board_log.py and the scenes' and fog's in db/scene_log.py, since each decides who
receives what (the event's audience, domain/audience.py), which is stored with it: `room_events`
keeps the main body, its `audience` (NULL: everyone) and the `variants` (other bodies), and
`since`/`history` return them so that recovery filters exactly as live delivery does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db import board_log, initiative_log, scene_log, undo_log
from tableforge.db.changes import (
    UNCHANGED,
    ActivateScene,
    AddAsset,
    AddToken,
    Change,
    ChangeConditions,
    ChangeFog,
    ChangeInitiative,
    CreateScene,
    MoveToken,
    PostMessage,
    RemoveAsset,
    RemoveScene,
    RemoveToken,
    SetAssetHidden,
    SetBar,
    SetPresence,
    StoredEvent,
    UndoLast,
    UpdateScene,
    UpdateToken,
)
from tableforge.db.engine import Database
from tableforge.db.event_body import ROOM_VERSION, TOKEN_VERSION, Template, body_template, encode_body
from tableforge.db.log_store import PRUNE_EVERY, FogCache, next_versions, store
from tableforge.db.schema import game_rooms, room_events, room_messages, room_players, users
from tableforge.domain import events as ev
from tableforge.domain import wire
from tableforge.domain.audience import Logged
from tableforge.domain.errors import ValidationFailed

__all__ = [  # the changes and the encoder, importable from here as before
    "PRUNE_EVERY", "ROOM_VERSION", "TOKEN_VERSION", "UNCHANGED", "ActivateScene", "AddAsset", "AddToken", "Change",
    "ChangeFog", "CreateScene", "EventLog", "MoveToken", "PostMessage", "RemoveAsset", "RemoveScene", "RemoveToken",
    "SetAssetHidden", "SetPresence", "StoredEvent", "Template", "TransactionalEventLog", "UpdateScene",
    "UpdateToken", "body_template", "encode_body",
]

R = TypeVar("R")
Membership = tuple[str | None, bool, str]  # (role, is_active, players_scene_id)


# ---------------------------------------------------------------------------------------- interface
class EventLog(ABC):
    """A room's stored events: append a change, read what a socket missed."""

    @abstractmethod
    async def append(self, room_id: str, change: Change[R]) -> StoredEvent[R]:
        """Apply `change` and store its event(s); raises the domain error when a guard refuses."""

    @abstractmethod
    async def since(self, room_id: str, after: int) -> tuple[int, list[Logged]]:
        """(current version, the stored events newer than `after` in version order) of the room."""

    @abstractmethod
    async def history(self, room_id: str, after: int, upto: int) -> list[Logged]:
        """The stored events in (after, upto], in version order (the hub's gap fill)."""

    @abstractmethod
    async def versions(self, room_ids: list[str]) -> dict[str, int]:
        """Several rooms' current versions (the hub's catch-up after a broker outage)."""

    @abstractmethod
    async def membership(self, room_id: str, user_id: str) -> Membership | None:
        """The room's (the user's role or None, is_active, the players' scene); None: no such room.
        Here, not in the room service, because `join` reads it before every attach and PostgreSQL's
        log reads it on a kept connection (db/pg_event_log.py)."""

    @abstractmethod
    async def read_rows(self, query: sa.Select[Any], params: dict[str, Any]) -> Sequence[Mapping[str, Any]]:
        """The rows of a read statement, by column name. For the hot reads (the snapshot, which
        checks membership itself, and the players' list): PostgreSQL's log runs them on a kept
        connection as a prepared statement. `query` is built once (a module constant), not per call."""

    async def read_row(self, query: sa.Select[Any], params: dict[str, Any]) -> Mapping[str, Any] | None:
        """The first row of `read_rows` (None: no row)."""
        rows = await self.read_rows(query, params)
        return rows[0] if rows else None


# The room's version and the stored events after `since`, in one statement: consistent without a
# transaction, since one statement reads one snapshot.
_SINCE = (
    sa.select(game_rooms.c.version.label("current"), room_events.c.version, room_events.c.body,
              room_events.c.audience, room_events.c.variants)
    .select_from(game_rooms.outerjoin(room_events, sa.and_(room_events.c.room_id == game_rooms.c.id,
                                                           room_events.c.version > sa.bindparam("since"),
                                                           room_events.c.version <= game_rooms.c.version)))
    .where(game_rooms.c.id == sa.bindparam("room_id"))
    .order_by(room_events.c.version)
)
# Role, is_active and the players' scene in one statement; the LEFT JOIN tells a non-member whether
# the room exists.
MEMBERSHIP = (
    sa.select(room_players.c.role, game_rooms.c.is_active, game_rooms.c.players_scene_id)
    .select_from(game_rooms.outerjoin(room_players, sa.and_(room_players.c.room_id == game_rooms.c.id,
                                                            room_players.c.user_id == sa.bindparam("user_id"))))
    .where(game_rooms.c.id == sa.bindparam("room_id"))
)
_VERSIONS = sa.select(game_rooms.c.id, game_rooms.c.version).where(
    game_rooms.c.id.in_(sa.bindparam("ids", expanding=True)))

_Apply = Callable[["TransactionalEventLog", AsyncConnection, str, Any], Awaitable[StoredEvent[Any]]]


class TransactionalEventLog(EventLog):
    """Each change in one write transaction (SQLite; PostgreSQL's fallback)."""

    def __init__(self, db: Database, history_size: int) -> None:
        self.db = db
        self.history_size = history_size
        self.fogs = FogCache()  # parsed fogs, for the moves of tokens on a fogged scene

    async def append(self, room_id: str, change: Change[R]) -> StoredEvent[R]:
        apply = _APPLY[type(change)]
        try:
            async with self.db.write() as conn:
                return cast(StoredEvent[R], await apply(self, conn, room_id, change))
        except undo_log.Refused as refused:  # an undo refused: its entry goes, the next undo goes further back
            if refused.version is not None and isinstance(change, UndoLast):
                await undo_log.drop(self.db, room_id, change.by, refused.version)
            raise refused.error from None

    async def since(self, room_id: str, after: int) -> tuple[int, list[Logged]]:
        async with self.db.read() as conn:
            rows = (await conn.execute(_SINCE, {"room_id": room_id, "since": after})).all()
        current = int(rows[0][0]) if rows else 0
        return current, [Logged(int(v), b, a, x) for _, v, b, a, x in rows if v is not None]

    async def history(self, room_id: str, after: int, upto: int) -> list[Logged]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(room_events.c.version, room_events.c.body, room_events.c.audience,
                          room_events.c.variants)
                .where(room_events.c.room_id == room_id, room_events.c.version > after,
                       room_events.c.version <= upto)
                .order_by(room_events.c.version))
            return [Logged(int(v), b, a, x) for v, b, a, x in rows]

    async def versions(self, room_ids: list[str]) -> dict[str, int]:
        if not room_ids:
            return {}
        async with self.db.read() as conn:
            return {str(i): int(v) for i, v in await conn.execute(_VERSIONS, {"ids": room_ids})}

    async def membership(self, room_id: str, user_id: str) -> Membership | None:
        async with self.db.read() as conn:
            row = (await conn.execute(MEMBERSHIP, {"room_id": room_id, "user_id": user_id})).first()
        return None if row is None else (row[0], bool(row[1]), str(row[2]))

    async def read_rows(self, query: sa.Select[Any], params: dict[str, Any]) -> Sequence[Mapping[str, Any]]:
        async with self.db.read() as conn:
            return (await conn.execute(query, params)).mappings().all()

    # -- the changes that are not the board's
    async def _post_message(self, conn: AsyncConnection, room_id: str, c: PostMessage) -> StoredEvent[dict[str, Any]]:
        version, _ = await next_versions(conn, room_id)
        if c.to:
            members = (await conn.execute(sa.select(sa.func.count()).where(
                room_players.c.room_id == room_id, room_players.c.user_id.in_(c.to)))).scalar()
            if int(members or 0) != len(c.to):
                raise ValidationFailed("a whisper goes to members of the room only", code="unknown_recipient",
                                       details=[{"field": "to", "problem": "not a member of the room"}])
        await conn.execute(sa.insert(room_messages).values(
            id=c.message_id, room_id=room_id, user_id=c.by, kind=c.kind, text=c.text, roll=c.roll, version=version,
            created_at=c.created_at, visibility=c.visibility, audience=c.audience,
            to_users=list(c.to) if c.to else None))
        payload, result = c.payload(version)
        return await store(conn, self.history_size, room_id, version, c.etype, c.by, payload, result, c.audience)

    async def _set_presence(self, conn: AsyncConnection, room_id: str, c: SetPresence) -> StoredEvent[None]:
        version, _ = await next_versions(conn, room_id)
        role = (await conn.execute(sa.update(room_players)
                                   .where(room_players.c.room_id == room_id, room_players.c.user_id == c.user_id)
                                   .values(is_online=c.online).returning(room_players.c.role))).scalar()
        user = (await conn.execute(sa.select(users).where(users.c.id == c.user_id))).mappings().one()
        if not c.online:
            return await store(conn, self.history_size, room_id, version, ev.PLAYER_LEFT, c.user_id,
                               {"user": wire.public_user(user)}, None)
        return await store(conn, self.history_size, room_id, version, ev.PLAYER_JOINED, c.user_id,
                           {"user": wire.public_user(user), "role": c.role or role}, None)


_APPLY: dict[type[Any], _Apply] = {
    AddToken: board_log.add_token,
    MoveToken: board_log.change_token,
    UpdateToken: board_log.change_token,
    RemoveToken: board_log.remove_token,
    SetBar: board_log.set_bar,
    ChangeConditions: board_log.change_conditions,
    ChangeInitiative: initiative_log.change_initiative,
    AddAsset: board_log.add_asset,
    RemoveAsset: board_log.remove_asset,
    SetAssetHidden: board_log.set_asset_hidden,
    CreateScene: scene_log.create_scene,
    UpdateScene: scene_log.update_scene,
    RemoveScene: scene_log.remove_scene,
    ActivateScene: scene_log.activate_scene,
    ChangeFog: scene_log.change_fog,
    UndoLast: undo_log.undo_last,
    PostMessage: TransactionalEventLog._post_message,
    SetPresence: TransactionalEventLog._set_presence,
}

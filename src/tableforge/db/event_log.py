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

One body encoder: `encode_body` for a known version, `body_template` for a body whose versions
are only known inside the SQL statement (the same dict, encoded once with marks in place of the
versions, split around them). Both encode the same dict, so the bytes are the same either way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db.engine import Database
from tableforge.db.schema import board_tokens, game_assets, game_rooms, room_events, room_messages, room_players, users
from tableforge.domain import events as ev
from tableforge.domain import wire
from tableforge.domain.errors import Conflict, Forbidden, NotFound

R = TypeVar("R")
PRUNE_EVERY = 100  # the history beyond `history_size` is pruned at every 100th version of a room


# ---------------------------------------------------------------------------------------- changes
class Change(Generic[R]):
    """A room change; `R` is what `append` gives back in `StoredEvent.result`."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class AddToken(Change[dict[str, Any]]):
    """token.added; the asset must be the room's (else asset_not_found). Result: the token."""

    by: str
    token_id: str
    asset_id: str
    x: float
    y: float
    rotation: float
    scale: float
    z_index: int
    created_at: datetime

    def token(self) -> dict[str, Any]:
        return wire.token({"id": self.token_id, "asset_id": self.asset_id, "owner_id": self.by, "x": self.x,
                           "y": self.y, "rotation": self.rotation, "scale": self.scale, "z_index": self.z_index,
                           "version": 1})


@dataclass(frozen=True, slots=True)
class MoveToken(Change[int]):
    """token.moved. `owner`: the caller unless GM (None: any token). Result: the token's version."""

    by: str
    token_id: str
    x: float
    y: float
    owner: str | None
    if_version: int | None


@dataclass(frozen=True, slots=True)
class UpdateToken(Change[dict[str, Any]]):
    """token.updated with `values` (columns). Result: the token after the change."""

    by: str
    token_id: str
    values: dict[str, Any]
    owner: str | None
    if_version: int | None


@dataclass(frozen=True, slots=True)
class RemoveToken(Change[None]):
    by: str
    token_id: str
    owner: str | None
    if_version: int | None


@dataclass(frozen=True, slots=True)
class PostMessage(Change[dict[str, Any]]):
    """chat.message (roll None) or dice.rolled. Result: the message (chat) or the roll (dice)."""

    by: str
    username: str
    message_id: str
    text: str
    roll: dict[str, Any] | None
    created_at: datetime

    @property
    def kind(self) -> str:
        return "chat" if self.roll is None else "roll"

    @property
    def etype(self) -> str:
        return ev.CHAT_MESSAGE if self.roll is None else ev.DICE_ROLLED

    def payload(self, version: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the event payload, the result)."""
        if self.roll is None:
            message = wire.message({"id": self.message_id, "user_id": self.by, "username": self.username,
                                    "kind": "chat", "text": self.text, "roll": None, "version": version,
                                    "created_at": self.created_at})
            return {"message": message}, message
        roll = self.roll | {"message_id": self.message_id, "user_id": self.by, "username": self.username}
        return {"roll": roll}, roll


@dataclass(frozen=True, slots=True)
class SetPresence(Change[None]):
    """player.joined / player.left, with is_online kept in step. `profile`: the user's public
    profile when the caller has it (else it is read)."""

    user_id: str
    online: bool
    profile: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AddAsset(Change[None]):
    """asset.added: `row` is the game_assets row, `asset` its public shape."""

    by: str
    row: dict[str, Any]
    asset: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RemoveAsset(Change[bool]):
    """One token.removed per token showing the asset, then asset.removed. Result: whether another
    asset still uses the same file (`sha256`), so the file must be kept."""

    by: str
    asset_id: str
    sha256: str


@dataclass(slots=True)
class StoredEvent(Generic[R]):
    room_id: str
    version: int
    ts: float
    body: bytes
    result: R
    # A change that stores several events (RemoveAsset): the ones before this, in version order.
    earlier: tuple[StoredEvent[None], ...] = field(default=())

    def all(self) -> tuple[StoredEvent[Any], ...]:
        """Every event the change stored, in version order (what the caller publishes)."""
        return (*self.earlier, self) if self.earlier else (self,)


# ---------------------------------------------------------------------------------------- encoder
def _envelope(etype: str, room_id: str, version: int, ts: float, by: str | None,
              payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": etype, "room_id": room_id, "version": version, "ts": ts, "by": by, **payload}


def encode_body(etype: str, room_id: str, version: int, ts: float, by: str | None, payload: dict[str, Any]) -> bytes:
    """A stored event's body, exactly what clients receive."""
    return orjson.dumps(_envelope(etype, room_id, version, ts, by, payload))


# Marks for versions only known inside a statement. `"version":` (or `"token_version":`) followed by
# such a number cannot occur inside an encoded JSON string (its quote would be escaped).
ROOM_VERSION = -7_000_000_000_000_001
TOKEN_VERSION = -7_000_000_000_000_002
_ROOM_KEY, _TOKEN_KEY = b'"version":', b'"token_version":'
_ROOM_MARK, _TOKEN_MARK = _ROOM_KEY + str(ROOM_VERSION).encode(), _TOKEN_KEY + str(TOKEN_VERSION).encode()


class Template(NamedTuple):
    """A body split around its version marks: `pieces[i]`, then the version `marks[i]` stands for
    (0: the room's, 1: the token's), then `pieces[i + 1]`, …"""

    pieces: list[str]
    marks: tuple[int, ...]

    def fill(self, room_version: int, token_version: int = 0) -> bytes:
        pieces, marks = self.pieces, self.marks
        if marks == (0, 1):  # token.moved, the hot one
            return f"{pieces[0]}{room_version}{pieces[1]}{token_version}{pieces[2]}".encode()
        values = (str(room_version), str(token_version))
        out = [pieces[0]]
        for mark, piece in zip(marks, pieces[1:], strict=True):
            out.append(values[mark])
            out.append(piece)
        return "".join(out).encode()


def body_template(etype: str, room_id: str, ts: float, by: str | None, payload: dict[str, Any]) -> Template:
    """The body with the room version (and ROOM_VERSION / TOKEN_VERSION in `payload`) left open."""
    raw = orjson.dumps(_envelope(etype, room_id, ROOM_VERSION, ts, by, payload))
    pieces: list[bytes] = []
    marks: list[int] = []
    for i, part in enumerate(raw.split(_ROOM_MARK)):
        if i:
            pieces[-1] += _ROOM_KEY
            marks.append(0)
        for j, sub in enumerate(part.split(_TOKEN_MARK)):
            if j:
                pieces[-1] += _TOKEN_KEY
                marks.append(1)
            pieces.append(sub)
    return Template([p.decode() for p in pieces], tuple(marks))


# ---------------------------------------------------------------------------------------- interface
class EventLog(ABC):
    """A room's stored events: append a change, read what a socket missed."""

    @abstractmethod
    async def append(self, room_id: str, change: Change[R]) -> StoredEvent[R]:
        """Apply `change` and store its event(s); raises the domain error when a guard refuses."""

    @abstractmethod
    async def since(self, room_id: str, after: int) -> tuple[int, list[tuple[int, str]]]:
        """(current version, the stored events newer than `after` in version order) of the room."""

    @abstractmethod
    async def history(self, room_id: str, after: int, upto: int) -> list[tuple[int, str]]:
        """The stored events in (after, upto], in version order (the hub's gap fill)."""

    @abstractmethod
    async def versions(self, room_ids: list[str]) -> dict[str, int]:
        """Several rooms' current versions (the hub's catch-up after a broker outage)."""


_TOKEN_COLUMNS = (board_tokens.c.id, board_tokens.c.asset_id, board_tokens.c.owner_id, board_tokens.c.x,
                  board_tokens.c.y, board_tokens.c.rotation, board_tokens.c.scale, board_tokens.c.z_index,
                  board_tokens.c.version)

# The room's version and the stored events after `since`, in one statement: consistent without a
# transaction, since one statement reads one snapshot.
_SINCE = (
    sa.select(game_rooms.c.version.label("current"), room_events.c.version, room_events.c.body)
    .select_from(game_rooms.outerjoin(room_events, sa.and_(room_events.c.room_id == game_rooms.c.id,
                                                           room_events.c.version > sa.bindparam("since"),
                                                           room_events.c.version <= game_rooms.c.version)))
    .where(game_rooms.c.id == sa.bindparam("room_id"))
    .order_by(room_events.c.version)
)
_VERSIONS = sa.select(game_rooms.c.id, game_rooms.c.version).where(
    game_rooms.c.id.in_(sa.bindparam("ids", expanding=True)))

_Apply = Callable[["TransactionalEventLog", AsyncConnection, str, Any], Awaitable[StoredEvent[Any]]]


class TransactionalEventLog(EventLog):
    """Each change in one write transaction (SQLite; PostgreSQL's fallback)."""

    def __init__(self, db: Database, history_size: int) -> None:
        self.db = db
        self.history_size = history_size

    async def append(self, room_id: str, change: Change[R]) -> StoredEvent[R]:
        apply = _APPLY[type(change)]
        async with self.db.write() as conn:
            return cast(StoredEvent[R], await apply(self, conn, room_id, change))

    async def since(self, room_id: str, after: int) -> tuple[int, list[tuple[int, str]]]:
        async with self.db.read() as conn:
            rows = (await conn.execute(_SINCE, {"room_id": room_id, "since": after})).all()
        current = int(rows[0][0]) if rows else 0
        return current, [(int(v), b) for _, v, b in rows if v is not None]

    async def history(self, room_id: str, after: int, upto: int) -> list[tuple[int, str]]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(room_events.c.version, room_events.c.body)
                .where(room_events.c.room_id == room_id, room_events.c.version > after,
                       room_events.c.version <= upto)
                .order_by(room_events.c.version))
            return [(int(v), b) for v, b in rows]

    async def versions(self, room_ids: list[str]) -> dict[str, int]:
        if not room_ids:
            return {}
        async with self.db.read() as conn:
            return {str(i): int(v) for i, v in await conn.execute(_VERSIONS, {"ids": room_ids})}

    # -- the steps every change shares
    async def _store(self, conn: AsyncConnection, room_id: str, version: int, etype: str, by: str | None,
                     payload: dict[str, Any], result: R) -> StoredEvent[R]:
        ts = wire.now_ms()
        body = encode_body(etype, room_id, version, ts, by, payload)
        await conn.execute(sa.insert(room_events).values(room_id=room_id, version=version, body=body.decode()))
        if version % PRUNE_EVERY == 0:
            await conn.execute(sa.delete(room_events).where(room_events.c.room_id == room_id,
                                                            room_events.c.version <= version - self.history_size))
        return StoredEvent(room_id, version, ts, body, result)

    @staticmethod
    async def _next_versions(conn: AsyncConnection, room_id: str, count: int = 1) -> int:
        """Reserve `count` versions for the room; returns the first. Raises if the room is closed."""
        row = (await conn.execute(
            sa.update(game_rooms).where(game_rooms.c.id == room_id, game_rooms.c.is_active.is_(True))
            .values(version=game_rooms.c.version + count).returning(game_rooms.c.version))).first()
        if row is None:
            exists = (await conn.execute(sa.select(game_rooms.c.id).where(game_rooms.c.id == room_id))).first()
            if exists is None:
                raise NotFound("no such room", code="room_not_found")
            raise Conflict("the room is closed", code="room_closed")
        return int(row[0]) - count + 1

    # -- one method per change
    async def _add_token(self, conn: AsyncConnection, room_id: str, c: AddToken) -> StoredEvent[dict[str, Any]]:
        version = await self._next_versions(conn, room_id)
        asset_room = (await conn.execute(
            sa.select(game_assets.c.room_id).where(game_assets.c.id == c.asset_id))).scalar()
        if asset_room is None or str(asset_room) != room_id:
            raise NotFound("no such asset in this room", code="asset_not_found")
        await conn.execute(sa.insert(board_tokens).values(
            id=c.token_id, room_id=room_id, asset_id=c.asset_id, owner_id=c.by, x=c.x, y=c.y, rotation=c.rotation,
            scale=c.scale, z_index=c.z_index, version=1, created_at=c.created_at))
        token = c.token()
        return await self._store(conn, room_id, version, ev.TOKEN_ADDED, c.by, {"token": token}, token)

    async def _change_token(self, conn: AsyncConnection, room_id: str, c: MoveToken | UpdateToken
                            ) -> StoredEvent[Any]:
        guard = _token_guard(room_id, c.token_id, c.owner, c.if_version)
        values = {"x": c.x, "y": c.y} if isinstance(c, MoveToken) else c.values
        version = await self._next_versions(conn, room_id)
        row = (await conn.execute(sa.update(board_tokens).where(*guard)
                                  .values(**values, version=board_tokens.c.version + 1)
                                  .returning(*_TOKEN_COLUMNS))).mappings().first()
        if row is None:
            raise await _explain_miss(conn, room_id, c.token_id, c.owner, c.if_version)
        token = wire.token(row)
        if isinstance(c, MoveToken):
            payload = {"token_id": c.token_id, "x": token["x"], "y": token["y"], "token_version": token["version"]}
            return await self._store(conn, room_id, version, ev.TOKEN_MOVED, c.by, payload, token["version"])
        return await self._store(conn, room_id, version, ev.TOKEN_UPDATED, c.by, {"token": token}, token)

    async def _remove_token(self, conn: AsyncConnection, room_id: str, c: RemoveToken) -> StoredEvent[None]:
        version = await self._next_versions(conn, room_id)
        guard = _token_guard(room_id, c.token_id, c.owner, c.if_version)
        row = (await conn.execute(sa.delete(board_tokens).where(*guard).returning(board_tokens.c.id))).first()
        if row is None:
            raise await _explain_miss(conn, room_id, c.token_id, c.owner, c.if_version)
        return await self._store(conn, room_id, version, ev.TOKEN_REMOVED, c.by, {"token_id": c.token_id}, None)

    async def _post_message(self, conn: AsyncConnection, room_id: str, c: PostMessage) -> StoredEvent[dict[str, Any]]:
        version = await self._next_versions(conn, room_id)
        await conn.execute(sa.insert(room_messages).values(
            id=c.message_id, room_id=room_id, user_id=c.by, kind=c.kind, text=c.text, roll=c.roll, version=version,
            created_at=c.created_at))
        payload, result = c.payload(version)
        return await self._store(conn, room_id, version, c.etype, c.by, payload, result)

    async def _set_presence(self, conn: AsyncConnection, room_id: str, c: SetPresence) -> StoredEvent[None]:
        version = await self._next_versions(conn, room_id)
        await conn.execute(sa.update(room_players)
                           .where(room_players.c.room_id == room_id, room_players.c.user_id == c.user_id)
                           .values(is_online=c.online))
        user = (await conn.execute(sa.select(users).where(users.c.id == c.user_id))).mappings().one()
        etype = ev.PLAYER_JOINED if c.online else ev.PLAYER_LEFT
        return await self._store(conn, room_id, version, etype, c.user_id, {"user": wire.public_user(user)}, None)

    async def _add_asset(self, conn: AsyncConnection, room_id: str, c: AddAsset) -> StoredEvent[None]:
        version = await self._next_versions(conn, room_id)
        await conn.execute(sa.insert(game_assets).values(**c.row))
        return await self._store(conn, room_id, version, ev.ASSET_ADDED, c.by, {"asset": c.asset}, None)

    async def _remove_asset(self, conn: AsyncConnection, room_id: str, c: RemoveAsset) -> StoredEvent[bool]:
        token_ids = [str(t) for t in (await conn.execute(
            sa.select(board_tokens.c.id).where(board_tokens.c.asset_id == c.asset_id)
            .order_by(board_tokens.c.created_at))).scalars()]
        version = await self._next_versions(conn, room_id, len(token_ids) + 1)
        await conn.execute(sa.delete(board_tokens).where(board_tokens.c.asset_id == c.asset_id))
        await conn.execute(sa.delete(game_assets).where(game_assets.c.id == c.asset_id))
        earlier = [await self._store(conn, room_id, version + offset, ev.TOKEN_REMOVED, c.by, {"token_id": token_id},
                                     None) for offset, token_id in enumerate(token_ids)]
        still_used = (await conn.execute(sa.select(sa.func.count()).where(game_assets.c.sha256 == c.sha256))).scalar()
        last = await self._store(conn, room_id, version + len(token_ids), ev.ASSET_REMOVED, c.by,
                                 {"asset_id": c.asset_id}, bool(still_used))
        last.earlier = tuple(earlier)
        return last


_APPLY: dict[type[Any], _Apply] = {
    AddToken: TransactionalEventLog._add_token,
    MoveToken: TransactionalEventLog._change_token,
    UpdateToken: TransactionalEventLog._change_token,
    RemoveToken: TransactionalEventLog._remove_token,
    PostMessage: TransactionalEventLog._post_message,
    SetPresence: TransactionalEventLog._set_presence,
    AddAsset: TransactionalEventLog._add_asset,
    RemoveAsset: TransactionalEventLog._remove_asset,
}


def _token_guard(room_id: str, token_id: str, owner: str | None, if_version: int | None) -> list[Any]:
    guard = [board_tokens.c.id == token_id, board_tokens.c.room_id == room_id]
    if owner is not None:
        guard.append(board_tokens.c.owner_id == owner)
    if if_version is not None:
        guard.append(board_tokens.c.version == if_version)
    return guard


async def _explain_miss(conn: AsyncConnection, room_id: str, token_id: str, owner: str | None,
                        if_version: int | None) -> Exception:
    """Error path only: say why the guarded UPDATE/DELETE matched no row."""
    row = (await conn.execute(
        sa.select(board_tokens.c.owner_id, board_tokens.c.version)
        .where(board_tokens.c.id == token_id, board_tokens.c.room_id == room_id)
    )).first()
    if row is None:
        return NotFound("no such token in this room", code="token_not_found")
    if owner is not None and owner != (str(row[0]) if row[0] else ""):
        return Forbidden("players may only change their own tokens", code="not_token_owner")
    if if_version is not None and int(row[1]) != if_version:
        return Conflict(f"the token changed (version {row[1]}, you had {if_version})", code="conflict",
                        details={"version": int(row[1])})
    return Conflict("the token changed", code="conflict")

"""Which tokens each local room holds, who owns them, their scene and whether players see them, so
that a preview `token.move` is checked as a commit is checked, and routed to the right audience
(GMs only for a token players do not see), without a database query per frame.

An instance already receives every stored event of the rooms it has sockets in: the hub hands
each one to `delivered` in version order. A room's index is loaded once, the first time a preview
in it needs it (one statement reads the room version and its tokens' owners), then kept current
from `token.added` / `token.removed` (deleting an asset publishes a `token.removed` per token).
A token's owner and scene never change and token ids are never reused, so an entry is only ever
added, then removed; whether players see it changes only with an event whose players' copy differs
from the main one (`token.added`/`token.removed` in place of a move or update: its routing has
variants). Events that change what players see in bulk (fog, the players' scene, an asset hidden or
revealed, a scene removed) drop the room's index: it is loaded again when next needed. A scene's fog
is read (and parsed) the first time a preview on that scene needs it, and forgotten with the index;
so is its grid (the ruler's), and a `scene.updated` drops the index too.

Consistency: an event is delivered only after it is committed, so whatever was delivered before
the load started is in what the load reads; events delivered while it runs are held and applied
on top (those at or below the loaded version are already in it). A version that skips one (the
hub gave up on a gap) drops the index: the next preview loads it again.

Bounded: at most `max_rooms` indexed rooms (least recently used dropped first; the hub also drops
a room's index when its last local socket leaves), `max_tokens` tokens per room (a bigger room is
not indexed: `UNKNOWN`, and the caller asks the database for that one token), and `max_held`
events held per load.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

import orjson

from tableforge.domain import events as ev
from tableforge.domain.audience import Routing, routing_of, selector_for
from tableforge.domain.fog import Fog
from tableforge.domain.grid_settings import GridSettings
from tableforge.observability import metrics
from tableforge.observability.logging import get_logger

log = get_logger(__name__)

# (room version, [(token id, owner id or None[, scene id, seen by players])][, players' scene id]);
# at most max_tokens + 1 tokens are needed.
OwnersLoader = Callable[[], Awaitable[tuple[Any, ...]]]
FogLoader = Callable[[], Awaitable[Fog]]
GridLoader = Callable[[], Awaitable[GridSettings]]
_V = TypeVar("_V")
# Stored bodies start with their type (the event log's one encoder puts it first),
# so the hot `token.moved` and everything else is skipped with one prefix test, unparsed.
_ADDED = f'{{"type":"{ev.TOKEN_ADDED}"'
_REMOVED = f'{{"type":"{ev.TOKEN_REMOVED}"'
_WATCHED = (_ADDED, _REMOVED)
_FLIPS = (f'{{"type":"{ev.TOKEN_MOVED}"', f'{{"type":"{ev.TOKEN_UPDATED}"')
_DROPS = tuple(f'{{"type":"{t}"' for t in (ev.FOG_CHANGED, ev.SCENE_ACTIVATED, ev.SCENE_REMOVED, ev.ASSET_UPDATED,
                                            ev.SCENE_UPDATED))  # scene.updated: the grids the ruler measures with
_TOKEN_ID = '"token_id":"'


class Token(NamedTuple):
    owner: str | None
    scene_id: str
    seen: bool  # players see it now


def _players_get_main(routing: Routing) -> bool:
    return routing.audience is None or selector_for(routing.audience).players


def _seen_after(routing: Routing) -> bool | None:
    """Whether players see the token after an event whose players' copy may differ (None: unknown):
    a players' copy that is not `token.removed` (`token.added`, or the event itself with the fields
    players may see) means they see it."""
    if _players_get_main(routing):
        return True
    for sel, body in routing.variants:
        if selector_for(sel).players:
            return not body.startswith(_REMOVED.encode())
    return False


class Lookup(enum.Enum):
    MISSING = "missing"  # no such token in the room
    UNKNOWN = "unknown"  # the room is not indexed (too many tokens): ask the database


class _Room:
    __slots__ = ("fogs", "grids", "held", "loading", "overflow", "owners", "pending", "players_scene", "version")

    def __init__(self) -> None:
        self.version = 0  # the stored version the index reflects
        self.owners: dict[str, Token] = {}
        self.players_scene = ""
        self.fogs: dict[str, Fog] = {}
        self.grids: dict[str, GridSettings] = {}
        # A scene's fog or grid being read: ("fog" | "grid", scene id) -> the read (at most 2 per scene).
        self.pending: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self.overflow = False
        self.loading: asyncio.Future[None] | None = None
        # Versions delivered while loading, with the event of those that matter (None: too many).
        self.held: list[tuple[int, str, Routing]] | None = []


class RoomTokens:
    def __init__(self, *, max_rooms: int = 10_000, max_tokens: int = 10_000, max_held: int = 1_000) -> None:
        self.max_rooms = max_rooms
        self.max_tokens = max_tokens
        self.max_held = max_held
        self._rooms: OrderedDict[str, _Room] = OrderedDict()
        self._token_count = 0

    def __len__(self) -> int:
        return len(self._rooms)

    # -- fed by the hub (must not raise, must not block) ---------------------------------------
    def delivered(self, room_id: str, version: int, body: str, audience: str | None = None,
                  variants: bytes = b"") -> None:
        room = self._rooms.get(room_id)
        if room is None:
            return
        routing = routing_of(audience, variants)
        if room.loading is not None:
            if room.held is not None:  # every version (to see gaps), the body only when it matters
                if len(room.held) < self.max_held:
                    room.held.append((version, body if self._matters(body, routing) else "", routing))
                else:
                    room.held = None  # more than we keep: load again next time
            return
        self._apply(room_id, room, version, body, routing)

    @staticmethod
    def _matters(body: str, routing: Routing) -> bool:
        return body.startswith(_WATCHED) or body.startswith(_DROPS) or (
            bool(routing.variants) and body.startswith(_FLIPS))

    def dropped(self, room_id: str) -> None:
        """The hub no longer delivers this room's events here (or they skipped one): forget it."""
        room = self._rooms.pop(room_id, None)
        if room is not None:
            self._forget(room)

    # -- asked by the preview path -------------------------------------------------------------
    async def owner(self, room_id: str, token_id: str, load: OwnersLoader) -> str | Lookup | None:
        """The owner of the token (None: nobody, only the GM may move it), or a Lookup."""
        found = await self.token(room_id, token_id, load)
        return found if isinstance(found, Lookup) else found.owner

    async def token(self, room_id: str, token_id: str, load: OwnersLoader) -> Token | Lookup:
        """The token's owner, scene and whether players see it, or a Lookup."""
        room = await self._room(room_id, load)
        return self._find(room, token_id)

    async def players_scene(self, room_id: str, load: OwnersLoader) -> str:
        return (await self._room(room_id, load)).players_scene

    async def fog(self, room_id: str, scene_id: str, load: OwnersLoader, load_fog: FogLoader) -> Fog:
        """The scene's fog as the index knows it (read once per scene while the index lives)."""
        room = await self._room(room_id, load)
        fog = room.fogs.get(scene_id)
        return fog if fog is not None else await self._read_once(room_id, room, room.fogs, "fog", scene_id, load_fog)

    async def grid(self, room_id: str, scene_id: str, load: OwnersLoader, load_grid: GridLoader) -> GridSettings:
        """The scene's grid as the index knows it (read once per scene while the index lives; any
        scene.updated drops the index)."""
        room = await self._room(room_id, load)
        grid = room.grids.get(scene_id)
        return grid if grid is not None else await self._read_once(room_id, room, room.grids, "grid", scene_id,
                                                                    load_grid)

    # -- the same answers without waiting, when the index has them (the synchronous preview lane) --
    def _ready(self, room_id: str) -> _Room | None:
        room = self._rooms.get(room_id)
        if room is None or room.loading is not None:
            return None
        self._rooms.move_to_end(room_id)
        return room

    def token_now(self, room_id: str, token_id: str) -> Token | Lookup | None:
        """`token`'s answer if the room is indexed (None: not loaded yet, ask `token`)."""
        room = self._ready(room_id)
        return None if room is None else self._find(room, token_id)

    def players_scene_now(self, room_id: str) -> str | None:
        room = self._ready(room_id)
        return None if room is None else room.players_scene

    def fog_now(self, room_id: str, scene_id: str) -> Fog | None:
        """The scene's fog if it was read already (None: ask `fog`)."""
        room = self._rooms.get(room_id)
        return None if room is None or room.loading is not None else room.fogs.get(scene_id)

    async def _read_once(self, room_id: str, room: _Room, kept: dict[str, _V], kind: str, scene_id: str,
                         read: Callable[[], Awaitable[_V]]) -> _V:
        """A scene's fog or grid, read once however many previews ask for it at the same time: the
        first previews of a room all find it missing, and each reading it again was a database
        query per preview frame until the first one came back (measured: 2 % of an instance's CPU
        in the preview load of bench_scaleout, plus the pool connections it held)."""
        key = (kind, scene_id)
        pending = room.pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(read())
            room.pending[key] = pending

            def done(f: asyncio.Future[Any]) -> None:
                room.pending.pop(key, None)
                if f.cancelled() or f.exception() is not None:
                    return  # every waiter gets the error; the next preview reads again
                if self._rooms.get(room_id) is room and len(kept) < 256:
                    kept[scene_id] = f.result()

            pending.add_done_callback(done)
        result: _V = await asyncio.shield(pending)
        return result

    async def _room(self, room_id: str, load: OwnersLoader) -> _Room:
        room = self._rooms.get(room_id)
        if room is None:
            room = await self._load(room_id, load)
        elif room.loading is not None:
            await asyncio.shield(room.loading)  # one load per room at a time; its failure is ours too
        else:
            self._rooms.move_to_end(room_id)
        return room

    @staticmethod
    def _find(room: _Room, token_id: str) -> Token | Lookup:
        if room.overflow:
            return Lookup.UNKNOWN
        owners = room.owners
        if token_id in owners:
            return owners[token_id]
        try:  # ids are stored in canonical form; the protocol also accepts upper case, no dashes
            canonical = str(uuid.UUID(token_id))
        except ValueError:
            return Lookup.MISSING
        return owners.get(canonical, Lookup.MISSING) if canonical != token_id else Lookup.MISSING

    async def _load(self, room_id: str, load: OwnersLoader) -> _Room:
        room = _Room()
        future = room.loading = asyncio.get_running_loop().create_future()
        self._rooms[room_id] = room
        while len(self._rooms) > self.max_rooms:
            _, evicted = self._rooms.popitem(last=False)
            self._forget(evicted)
            metrics.ROOM_TOKENS_EVICTED.inc()
        metrics.ROOM_TOKENS_LOADS.inc()
        metrics.ROOM_TOKENS_ROOMS.set(len(self._rooms))
        try:
            loaded = await load()
        except BaseException as exc:
            if self._rooms.get(room_id) is room:
                self.dropped(room_id)
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters re-raise it
            raise
        room.version, rows = int(loaded[0]), loaded[1]
        room.players_scene = str(loaded[2]) if len(loaded) > 2 and loaded[2] else ""
        if len(rows) > self.max_tokens:
            room.overflow = True
        else:
            room.owners = {str(r[0]): Token(str(r[1]) if r[1] else None, str(r[2]) if len(r) > 2 else "",
                                            bool(r[3]) if len(r) > 3 else True) for r in rows}
        held, room.held, room.loading = room.held, None, None
        if self._rooms.get(room_id) is room:
            if held is None:  # too much happened during the load: answer from it, keep nothing
                del self._rooms[room_id]
                metrics.ROOM_TOKENS_ROOMS.set(len(self._rooms))
            else:
                self._token_count += len(room.owners)
                for held_version, body, routing in held:
                    if self._rooms.get(room_id) is room:
                        self._apply(room_id, room, held_version, body, routing)
        metrics.ROOM_TOKENS_TOKENS.set(self._token_count)
        future.set_result(None)
        return room

    def _apply(self, room_id: str, room: _Room, version: int, body: str, routing: Routing) -> None:
        if version <= room.version:
            return  # already in what was loaded
        if version != room.version + 1:
            metrics.ROOM_TOKENS_GAPS.inc()
            self.dropped(room_id)  # an event we never saw: load again when needed
            return
        room.version = version
        if routing.variants and body.startswith(_FLIPS):
            self._flip(room, body, routing)
            return
        if body.startswith(_DROPS):
            self.dropped(room_id)  # what players see changed in bulk: load again when needed
            return
        if room.overflow or not body.startswith(_WATCHED):
            return
        try:
            event = orjson.loads(body)
            if body.startswith(_ADDED):
                token = event["token"]
                token_id, owner = str(token["id"]), token.get("owner_id")
                if token_id not in room.owners:
                    if len(room.owners) >= self.max_tokens:
                        room.overflow = True
                        self._token_count -= len(room.owners)
                        room.owners = {}
                    else:
                        room.owners[token_id] = Token(str(owner) if owner else None, str(token.get("scene_id", "")),
                                                      bool(_seen_after(routing)))
                        self._token_count += 1
            elif room.owners.pop(str(event["token_id"]), Lookup.MISSING) is not Lookup.MISSING:
                self._token_count -= 1
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("room_tokens.bad_event", room_id=room_id, version=version)
            self.dropped(room_id)
            return
        metrics.ROOM_TOKENS_TOKENS.set(self._token_count)

    @staticmethod
    def _flip(room: _Room, body: str, routing: Routing) -> None:
        """A move or update whose players' copy differs: whether players see the token changed."""
        start = body.find(_TOKEN_ID)  # token.moved carries token_id; token.updated the token
        token_id = body[start + len(_TOKEN_ID): start + len(_TOKEN_ID) + 36] if start >= 0 else ""
        if start < 0:
            try:
                token_id = str(orjson.loads(body)["token"]["id"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                return
        known = room.owners.get(token_id)
        seen = _seen_after(routing)
        if known is not None and seen is not None:
            room.owners[token_id] = known._replace(seen=seen)

    def _forget(self, room: _Room) -> None:
        """Account for a room leaving the index (its owners stay readable for lookups in flight)."""
        if room.loading is None:
            self._token_count -= len(room.owners)
        metrics.ROOM_TOKENS_ROOMS.set(len(self._rooms))
        metrics.ROOM_TOKENS_TOKENS.set(self._token_count)

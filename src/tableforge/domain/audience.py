"""Who receives which body of a room event (docs/protocol.md, "Audiences and room.skip").

A stored event has a main body (the full one: what a GM, or a whisper's recipients, see) and a
`Routing`: the selector of the main body, then other bodies tried in order for sockets the main
selector does not match. A socket matched by nothing gets `room.skip` for that version: a notice
that carries nothing but the version, so its client sees no gap and does not resync.

Selectors are short strings decided once, where the event is stored, and carried as they are
through the event log, the broker and recovery, so every instance filters the same way. Terms,
joined by `;`:
- `g`          every GM of the room;
- `g@<scene>`  the GMs viewing that scene;
- `p`          the players and spectators (they always see the players' scene: the service that
               stores the event already knows whether its scene was the players' one);
- `u:<user>`   one user (whispers, secret rolls).
A main selector of None means everyone.

Matching is per socket, but memoised per event by the socket's `View.key` (GMs of one scene, or the
players and spectators), so one frame is encoded per audience, never per socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

import orjson

GM_ROLE: Final = "gm"
PLAYERS: Final = "p"
GMS: Final = "g"


def gms_of(scene_id: str) -> str:
    return f"g@{scene_id}"


def user(user_id: str) -> str:
    return f"u:{user_id}"


def join(*terms: str) -> str:
    return ";".join(t for t in terms if t)


class View:
    """What a socket may see in one room: its role, the scene it views (GMs; None for players and
    spectators, who view the players' scene), and its user. Immutable; `key` is computed once, since
    delivery reads it for every socket and event."""

    __slots__ = ("key", "role", "scene_id", "user_id")

    def __init__(self, role: str, scene_id: str | None, user_id: str) -> None:
        self.role = role
        self.scene_id = scene_id
        self.user_id = user_id
        # Sockets with the same key receive the same frames, except for `u:` selectors.
        self.key: tuple[str, ...] = (GMS, scene_id or "") if role == GM_ROLE else (PLAYERS,)

    @property
    def is_gm(self) -> bool:
        return self.role == GM_ROLE

    def __eq__(self, other: object) -> bool:
        return isinstance(other, View) and (self.role, self.scene_id, self.user_id) == (
            other.role, other.scene_id, other.user_id)

    def __hash__(self) -> int:
        return hash((self.role, self.scene_id, self.user_id))

    def __repr__(self) -> str:
        return f"View({self.role!r}, {self.scene_id!r}, {self.user_id!r})"


class Selector:
    """A parsed selector string."""

    __slots__ = ("all_gms", "gm_scenes", "players", "users")

    def __init__(self, text: str) -> None:
        self.all_gms = False
        self.players = False
        gm_scenes: set[str] = set()
        users: set[str] = set()
        for term in text.split(";"):
            if term == GMS:
                self.all_gms = True
            elif term == PLAYERS:
                self.players = True
            elif term.startswith("g@"):
                gm_scenes.add(term[2:])
            elif term.startswith("u:"):
                users.add(term[2:])
            elif term:
                raise ValueError(f"unknown audience term {term[:40]!r}")
        self.gm_scenes = frozenset(gm_scenes)
        self.users = frozenset(users)

    def matches(self, view: View) -> bool:
        if view.user_id in self.users:
            return True
        if view.role == GM_ROLE:
            return self.all_gms or (view.scene_id is not None and view.scene_id in self.gm_scenes)
        return self.players


_PARSED: dict[str, Selector] = {}
_PARSED_MAX = 4096  # distinct selectors (a room's scenes and users): bounded, cleared when full


def selector_for(text: str) -> Selector:
    """The parsed selector, from a small cache: the same few strings recur on every event."""
    found = _PARSED.get(text)
    if found is None:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        found = _PARSED[text] = Selector(text)
    return found


@dataclass(frozen=True, slots=True)
class Routing:
    """The audience of one stored event: `audience` selects the main body (None: everyone);
    `variants` are (selector, body) tried in order for the sockets it does not select."""

    audience: str | None = None
    variants: tuple[tuple[str, bytes], ...] = ()

    @property
    def everyone(self) -> bool:
        return self.audience is None

    def encoded_variants(self) -> str | None:
        """The variants as stored (the `room_events.variants` column): a JSON list of
        [selector, body-as-text] pairs, or None."""
        if not self.variants:
            return None
        return orjson.dumps([[sel, body.decode()] for sel, body in self.variants]).decode()


_ROUTINGS: dict[str | None, Routing] = {}


def cached() -> int:
    """How many parsed selectors and routings are kept (for a metric)."""
    return len(_PARSED) + len(_ROUTINGS)


def routing_of(audience: str | None, variants: str | bytes | None) -> Routing:
    """The routing of a stored event; those without variants (nearly all) come from a small cache."""
    if variants:
        return Routing(audience, decode_variants(variants))
    found = _ROUTINGS.get(audience)
    if found is None:
        if len(_ROUTINGS) >= _PARSED_MAX:
            _ROUTINGS.clear()
        found = _ROUTINGS[audience] = Routing(audience)
    return found


def decode_variants(text: str | bytes | None) -> tuple[tuple[str, bytes], ...]:
    if not text:
        return ()
    return tuple((str(sel), str(body).encode()) for sel, body in orjson.loads(text))


def skip_frame(room_id: str, version: int) -> str:
    """The notice for a version that carries nothing for this socket (no ts, no sender, no id)."""
    return f'{{"type":"room.skip","room_id":"{room_id}","version":{version}}}'


class Picker:
    """Chooses each socket's frame for one event, encoding each body once (memoised by view key)."""

    __slots__ = ("_bodies", "_memo", "_per_user", "_room_id", "_selectors", "_skip", "_version")

    def __init__(self, room_id: str, version: int, main: str, routing: Routing) -> None:
        self._room_id = room_id
        self._version = version
        selectors: list[tuple[Selector, str]] = []
        if routing.audience is not None:
            selectors.append((selector_for(routing.audience), main))
            for sel, body in routing.variants:
                selectors.append((selector_for(sel), body.decode()))
        self._selectors = selectors
        self._bodies = main
        self._per_user = any(s.users for s, _ in selectors)
        self._memo: dict[tuple[str, ...], str | None] = {}
        self._skip: str | None = None

    def frame(self, view: View) -> str:
        """The text this socket receives: a body, or room.skip."""
        if not self._selectors:
            return self._bodies
        key = (*view.key, view.user_id) if self._per_user else view.key
        found = self._memo.get(key, "")
        if found == "":
            found = None
            for selector, text in self._selectors:
                if selector.matches(view):
                    found = text
                    break
            self._memo[key] = found
        if found is None:
            if self._skip is None:
                self._skip = skip_frame(self._room_id, self._version)
            return self._skip
        return found

    def players_frame(self) -> str | None:
        """What players and spectators receive, or None when it is `room.skip` (for indexes that
        follow players' visibility without a socket at hand)."""
        if not self._selectors:
            return self._bodies
        for selector, text in self._selectors:
            if selector.players:
                return text
        return None


class Logged(NamedTuple):
    """A stored event as the log gives it back: its main body, and who receives what."""

    version: int
    body: str
    audience: str | None = None
    variants: str | None = None  # Routing.encoded_variants()

    @property
    def routing(self) -> Routing:
        return routing_of(self.audience, self.variants)

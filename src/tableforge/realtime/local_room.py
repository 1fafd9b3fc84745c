"""One room as this instance holds it: its local sockets, what it delivered, what it waits for.

The hub (hub.py) does the ordering; this is its per-room state, and the frames it sends of its own:

- `expected`: the next version to deliver (0 until the room is initialised);
- `goal`: the highest version known to exist (seen from the broker, or read from the database);
- `buffer`: versions that arrived early (every key >= `expected`, always);
- `filler`: the room's one catch-up task; while `expected <= goal` it reads the missing versions
  from the stored event log in batches and delivers them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import orjson

from tableforge.domain.audience import View, selector_for
from tableforge.realtime.connection import Connection
from tableforge.realtime.envelope import Envelope

PENDING = -1  # the cursor of a socket that is joining: its events are held until its ack is queued


class RoomObserver(Protocol):
    """Sees each stored room event this instance delivers, in version order (e.g. the preview
    check's token owner index, realtime/room_tokens.py). Must not block and must not raise."""

    def delivered(self, room_id: str, version: int, body: str, audience: str | None = None,
                  variants: bytes = b"") -> None:
        """`body`: the main (full) body; `audience`, `variants`: who receives what (domain/audience.py,
        `routing_of` makes a Routing of them when it is needed)."""

    def dropped(self, room_id: str) -> None:
        """The room's last local socket left: its events no longer come here."""


class LocalRoom:
    __slots__ = ("authors", "behind_since", "buffer", "expected", "filler", "filler_waits", "goal", "matches",
                 "members", "pending", "ready", "room_id", "told", "views")

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.members: dict[Connection, int] = {}  # connection -> cursor (PENDING while joining)
        self.views: dict[Connection, View] = {}  # what each member may see (role, scene, user)
        # Audience -> whether every member's view matches it (then all get one frame, as for
        # everyone). Cleared whenever a view comes, goes or changes; bounded.
        self.matches: dict[str, bool] = {}
        # Held while joining: events (picked for the socket's view at activation) or ready frames.
        self.pending: dict[Connection, list[tuple[int, Envelope | str]]] = {}
        self.expected = 0
        self.goal = 0
        self.buffer: dict[int, Envelope] = {}
        self.filler: asyncio.Task[None] | None = None
        self.filler_waits = False  # the filler is still giving the broker its `gap_wait`
        self.behind_since: float | None = None  # monotonic time the room fell behind, None while current
        self.told: set[Connection] = set()  # sockets sent `room.resync` during this catch-up
        # Version -> the local socket that stored it, for versions this instance published and has not
        # delivered yet: the log does not keep the sender, so an event read back from it (catch-up)
        # would otherwise reach its sender, which already had the ack with that version. Bounded.
        self.authors: dict[int, str] = {}
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()


    def set_view(self, conn: Connection, view: View | None) -> None:
        if view is None:
            self.views.pop(conn, None)
        else:
            self.views[conn] = view
        self.matches.clear()

    def all_match(self, audience: str) -> bool:
        """Whether every member (joining ones included) is selected by `audience`."""
        found = self.matches.get(audience)
        if found is None:
            selector = selector_for(audience)
            found = all(selector.matches(view) for view in self.views.values())
            if len(self.matches) >= 64:
                self.matches.clear()
            self.matches[audience] = found
        return found

    def note(self, version: int) -> None:
        """`version` exists: the room must reach it."""
        if version > self.goal:
            self.goal = version
        if self.behind_since is None:
            self.behind_since = time.monotonic()

    def advance(self, expected: int) -> None:
        """The next version to deliver is `expected`; what the buffer holds below it is dropped."""
        self.expected = expected
        for version in [v for v in self.buffer if v < expected]:
            del self.buffer[version]
        self.forget_authors()

    def forget_authors(self) -> None:
        """Drop the senders of versions already delivered (or skipped)."""
        for version in [v for v in self.authors if v < self.expected]:
            del self.authors[version]


def resync_frame(room_id: str, version: int) -> str:
    return orjson.dumps({"type": "room.resync", "room_id": room_id, "version": version}).decode()


def ts_of(body: str) -> float:
    """An event's own `ts` (for the delivery-latency metric); now if it has none."""
    try:
        ts = orjson.loads(body).get("ts")
    except (orjson.JSONDecodeError, AttributeError):
        ts = None
    return float(ts) if isinstance(ts, int | float) else time.time() * 1000

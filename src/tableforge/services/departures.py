"""Presence that outlasts a dropped socket for a short grace (`presence_grace_seconds`).

A player whose connection drops, whose page reloads or whose server restarts is usually back within a
second or two. Announcing `player.left` and then `player.joined` for that gives every other member two
events (and the room two versions) about nothing, and costs the instance two stored events, two drops of
the room's player list and two presence updates in Redis. So a socket that ends in a way after which a
client comes back (`COMES_BACK`) keeps its presence entries, and the user's mark for send-to-user, for
the grace: a socket of the same user that joins meanwhile, on any instance, finds the user online and
announces nothing. When the grace runs out the entries go, and `player.left` is stored only if no socket
of the user is left in the room. The socket itself is gone at once: it receives nothing.

This holds the departures and their timers; `services/play.py` decides which sockets linger and what
happens when a departure is due.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

# The close codes after which a client reconnects by itself: the connection dropped (1006), the page went
# away (1001: a reload, a closed laptop), the client is reconnecting (4000, *extension*), or the server
# asked it to come back (1012: a restart or a drain; 1013: too slow, try again). Any other end (1000, a
# `leave`, a revoked session, a policy close) is a goodbye: presence ends at once.
COMES_BACK = frozenset({1001, 1006, 1012, 1013, 4000})
# At most this many sockets linger at once (a mass disconnect beyond it departs at once, as without grace).
LINGER_MAX = 50_000

LINGERING = Gauge("tableforge_presence_lingering", "Dropped sockets whose presence lasts until their grace runs out")
LINGERED = Counter("tableforge_presence_lingered_total",
                   "Dropped sockets whose grace ran out, by outcome: the user came back (nothing announced) "
                   "or left (player.left stored), or the grace was refused (too many lingering)",
                   ["outcome"])
for _outcome in ("returned", "left", "refused"):
    LINGERED.labels(_outcome)


@dataclass(slots=True)
class Departure:
    """A socket that dropped: whose it was, the presence key it holds in each room, what others saw of
    its user (for `player.left`)."""

    user_id: str
    conn_key: str
    rooms: list[str]
    profile: dict[str, Any]
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class Departures:
    def __init__(self, limit: int = LINGER_MAX) -> None:
        self._limit = limit
        self._held: dict[str, Departure] = {}  # conn key -> its departure
        self._by_user: dict[str, set[str]] = {}  # user id -> the conn keys of their held departures

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, departure: Departure, seconds: float, due: Callable[[Departure], None]) -> bool:
        """Keep `departure` for `seconds`, then hand it to `due` (from the event loop: it must not
        block). False if too many are held: the caller departs now."""
        if len(self._held) >= self._limit:
            LINGERED.labels("refused").inc()
            return False
        key = departure.conn_key
        departure.timer = asyncio.get_running_loop().call_later(seconds, self._due, key, due)
        self._held[key] = departure
        self._by_user.setdefault(departure.user_id, set()).add(key)
        LINGERING.set(len(self._held))
        return True

    def _due(self, key: str, due: Callable[[Departure], None]) -> None:
        departure = self._pop(key)
        if departure is not None:
            due(departure)

    def _pop(self, key: str) -> Departure | None:
        departure = self._held.pop(key, None)
        if departure is None:
            return None
        if departure.timer is not None:
            departure.timer.cancel()
        keys = self._by_user.get(departure.user_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_user[departure.user_id]
        LINGERING.set(len(self._held))
        return departure

    def take_room(self, room_id: str, user_id: str) -> list[str]:
        """The presence keys the user's dropped sockets still hold in the room, given up now (the user
        said goodbye there: it must not wait for an old socket's grace). Their departures stay for the
        rest (other rooms, the user's mark)."""
        taken = []
        for key in self._by_user.get(user_id, ()):
            rooms = self._held[key].rooms
            if room_id in rooms:
                rooms.remove(room_id)
                taken.append(key)
        return taken

    def take_all(self) -> list[Departure]:
        """Every held departure, due now (the instance stops)."""
        return [d for d in (self._pop(key) for key in list(self._held)) if d is not None]

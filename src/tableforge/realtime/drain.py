"""Leaving gently: this instance's drain state, and closing sockets a few at a time.

A drain (SIGTERM, or an administrator's command) first makes `/ready` answer 503 and refuses new
handshakes, so the balancer stops sending anything here; after a notice period (long enough for the
balancer's health checks to see it) the sockets are closed with 1012 over a window, evenly, so their
clients reconnect elsewhere as a trickle rather than a storm. A shed (rebalancing) closes some of the
sockets the same way without leaving.

The pacing is linear: of the `n` sockets open when the closing began, `due(n, t, window)` must be
closed `t` seconds in, so the k-th closes at `k * window / n` and the last at the window's end.
Sockets that go away by themselves count towards it. Each close is polite (`Connection.close_when_idle`):
a message being handled is answered before the close frame, so a client may resend whatever went
unanswered without applying anything twice.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, TypeVar

CLOSE_SERVICE_RESTART: Final = 1012
MIN_TICK: Final = 0.05  # never wake more often than this: faster rates close several sockets per tick
MAX_TICK: Final = 1.0  # look again at least this often (sockets that left by themselves, a resume)

DrainPhase = Literal["serving", "draining", "drained"]


class Closable(Protocol):
    @property
    def closing(self) -> bool: ...

    def close_when_idle(self, code: int, reason: str) -> None: ...


C = TypeVar("C", bound=Closable)


def due(count: int, elapsed: float, window: float) -> int:
    """How many of `count` sockets must be closed `elapsed` seconds into a window (0..count)."""
    if count <= 0:
        return 0
    if window <= 0 or elapsed >= window:
        return count
    if elapsed <= 0:
        return 0
    # the epsilon: k * window / count read back through floats must count as k, not k - 1
    return min(count, math.floor(count * elapsed / window + 1e-9))


def next_wait(count: int, done: int, elapsed: float, window: float) -> float:
    """Seconds until the close after the first `done` is due (bounded to MIN_TICK..MAX_TICK)."""
    if count <= 0 or window <= 0:
        return MIN_TICK
    at = min(window, (done + 1) * window / count)
    return min(MAX_TICK, max(MIN_TICK, at - elapsed))


async def close_gradually(
    candidates: Callable[[], Sequence[C]],
    count: int,
    window: float,
    reason: str,
    *,
    keep: int = 0,
    on_close: Callable[[C], None] = lambda _conn: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> int:
    """Close sockets that `candidates()` lists (the open ones, in its order) until `keep` remain,
    at most `count` of them, paced over `window` seconds. Returns how many this call closed.

    The target is an open count (`keep` plus what is not yet due), not a number of closes: sockets
    that leave by themselves count towards it. `count` caps the closes, so sockets that come straight
    back (a balancer that hashes them here again) are not shed over and over."""
    started = clock()
    closed = 0
    while True:
        elapsed = clock() - started
        done = due(count, elapsed, window)
        open_now = [c for c in candidates() if not c.closing]
        excess = max(0, min(len(open_now) - (keep + count - done), count - closed))
        for conn in open_now[:excess]:
            conn.close_when_idle(CLOSE_SERVICE_RESTART, reason)
            closed += 1
            on_close(conn)
        if closed >= count or len(open_now) - excess <= keep:
            return closed
        await sleep(next_wait(count, done, elapsed, window))


def room_order(conns: Sequence[C]) -> list[C]:
    """A room's local sockets one after another: they land on the same new instance close together
    (with room affinity, all of them), so the room spans two instances for a shorter time."""
    def key(conn: C) -> tuple[str, str]:
        rooms = getattr(conn, "rooms", None) or {}
        return (min(rooms) if rooms else "", str(getattr(conn, "conn_id", "")))

    return sorted(conns, key=key)


@dataclass
class DrainState:
    """What `/ready`, the handshake and the registry read. One per instance (`Runtime.drain`)."""

    phase: DrainPhase = "serving"
    cause: str = ""  # "signal" or "admin"
    since: float | None = None  # wall clock, for the operator
    window: float = 0.0
    notice: float = 0.0
    to_close: int = 0  # sockets open when the closing began
    closed: int = 0
    task: asyncio.Task[None] | None = None
    shed_task: asyncio.Task[None] | None = None

    @property
    def refusing(self) -> bool:
        """New sockets are refused from the first moment of a drain until a resume."""
        return self.phase != "serving"

    def begin(self, cause: str, window: float, notice: float) -> None:
        self.phase, self.cause, self.since = "draining", cause, time.time()
        self.window, self.notice, self.to_close, self.closed = window, notice, 0, 0

    def reset(self) -> None:
        self.phase, self.cause, self.since = "serving", "", None
        self.window = self.notice = 0.0
        self.to_close = self.closed = 0

    def report(self) -> dict[str, object]:
        """The drain as `/ready`, the registry and the admin routes show it."""
        if self.phase == "serving":
            return {"state": "serving"}
        return {"state": self.phase, "cause": self.cause, "since": self.since, "window_seconds": self.window,
                "notice_seconds": self.notice, "sockets_to_close": self.to_close, "sockets_closed": self.closed}

"""Limits on guessing a secret (a password, an invite code): N wrong guesses per key in a window.

Each guess is counted *before* it is checked, as a reservation: 100 wrong passwords sent at once
cannot all reach the password check, because the 11th reservation already finds the counter full.
A guess that turns out not to be one (the right password, a database error) gives its reservation
back; a right guess may also clear a key (a successful login clears its username's failures: the
owner has just proved the password, and this keeps an attacker from locking the owner out for
longer than one window). The address key is never cleared by a success: otherwise one account of
the attacker's own would reset their address between guesses.

Counters are fixed windows that start with the first guess: once a key is full, every guess is
refused (429 `rate_limited`, Retry-After = the rest of the window) without being checked, right
or wrong, until the window ends.

Two stores behind one interface: memory (embedded mode; an LRU-bounded map), Redis (scale-out: one
small Lua script per guess, so every instance sees the same counts). When Redis fails the Redis
store counts in its own memory until Redis answers again (per instance, so the limits still hold
per instance): a Redis outage never locks everyone out, never answers 500, never opens the door.
"""

from __future__ import annotations

import hashlib
import math
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from tableforge.domain.errors import RateLimited
from tableforge.observability import metrics
from tableforge.observability.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Counter:
    """One key's counter: at most `limit` guesses per `window` seconds."""

    key: str
    limit: int
    window: float


class AttemptStore(ABC):
    @abstractmethod
    async def take(self, counters: Sequence[Counter]) -> tuple[float, int]:
        """Atomically: if every counter is below its limit, add one to each and return (0, -1);
        otherwise change nothing and return (seconds until the fullest one frees, its index)."""

    @abstractmethod
    async def give_back(self, key: str) -> None:
        """Undo one `take` of the key (the guess was not a wrong one)."""

    @abstractmethod
    async def clear(self, key: str) -> None:
        """Forget the key's guesses."""


class MemoryAttemptStore(AttemptStore):
    """One process. At most `max_keys` counters: the least recently used goes first (a metric counts
    evictions). Without a bound, guesses at random usernames would grow the map forever."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._counts: OrderedDict[str, list[float]] = OrderedDict()  # key -> [count, deadline]

    def __len__(self) -> int:
        return len(self._counts)

    def _live(self, key: str, now: float) -> list[float] | None:
        entry = self._counts.get(key)
        if entry is not None and entry[1] <= now:
            del self._counts[key]
            return None
        return entry

    async def take(self, counters: Sequence[Counter]) -> tuple[float, int]:
        # No await inside: atomic on the event loop.
        now = time.monotonic()
        wait, which = 0.0, -1
        for index, counter in enumerate(counters):
            entry = self._live(counter.key, now)
            if entry is not None and entry[0] >= counter.limit:
                self._counts.move_to_end(counter.key)  # a key being hammered stays
                if entry[1] - now > wait:
                    wait, which = entry[1] - now, index
        if which >= 0:
            return wait, which
        for counter in counters:
            entry = self._live(counter.key, now)
            if entry is None:
                entry = self._counts[counter.key] = [0.0, now + counter.window]
            entry[0] += 1
            self._counts.move_to_end(counter.key)
        while len(self._counts) > self.max_keys:
            self._counts.popitem(last=False)
            metrics.ATTEMPT_KEYS_EVICTED.inc()
        metrics.ATTEMPT_KEYS.set(len(self._counts))
        return 0.0, -1

    async def give_back(self, key: str) -> None:
        entry = self._live(key, time.monotonic())
        if entry is not None:
            entry[0] -= 1
            if entry[0] <= 0:
                del self._counts[key]
                metrics.ATTEMPT_KEYS.set(len(self._counts))

    async def clear(self, key: str) -> None:
        if self._counts.pop(key, None) is not None:
            metrics.ATTEMPT_KEYS.set(len(self._counts))


@dataclass(frozen=True, slots=True)
class Rule:
    """One kind of key (`user`, `address`) with its limit; `reset_on_success`: a right guess clears it."""

    kind: str
    limit: int
    window: float
    reset_on_success: bool = False


def _key_part(value: str) -> str:
    """A bounded, opaque key part: usernames and codes never appear in Redis keys."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class AttemptLimiter:
    """Guesses at one kind of secret (`login`, `invite`, later registration invites), per rule."""

    def __init__(self, store: AttemptStore, name: str, rules: Sequence[Rule]) -> None:
        self.store = store
        self.name = name
        self.rules = list(rules)

    def attempt(self, **values: str) -> Attempt:
        """`async with limiter.attempt(user=..., address=...) as a:` then `a.wrong()` or `a.right()`.

        Entering raises RateLimited when a key is full. Leaving without `wrong()` gives the
        reservation back (an error that was not a wrong guess must not count against anyone)."""
        counters = [(rule, Counter(f"attempts:{self.name}:{rule.kind}:{_key_part(values[rule.kind])}",
                                   rule.limit, rule.window)) for rule in self.rules]
        return Attempt(self, counters)


class Attempt:
    __slots__ = ("_counters", "_limiter", "_outcome")

    def __init__(self, limiter: AttemptLimiter, counters: list[tuple[Rule, Counter]]) -> None:
        self._limiter = limiter
        self._counters = counters
        self._outcome: Literal["unknown", "wrong", "right"] = "unknown"

    def wrong(self) -> None:
        self._outcome = "wrong"

    def right(self) -> None:
        self._outcome = "right"

    async def __aenter__(self) -> Attempt:
        limiter = self._limiter
        wait, which = await limiter.store.take([c for _, c in self._counters])
        if which >= 0:
            kind = self._counters[which][0].kind
            metrics.ATTEMPTS_REFUSED.labels(limiter.name, kind).inc()
            retry_after = max(1, math.ceil(wait))
            raise RateLimited(f"too many failed attempts: try again in {retry_after} s", code="rate_limited",
                              details={"retry_after": retry_after, "limit": kind},
                              headers={"Retry-After": str(retry_after)})
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._outcome == "wrong":
            return
        store = self._limiter.store
        for rule, counter in self._counters:
            if self._outcome == "right" and rule.reset_on_success:
                await store.clear(counter.key)
            else:
                await store.give_back(counter.key)

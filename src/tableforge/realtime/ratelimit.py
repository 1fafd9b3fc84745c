"""A token bucket per socket: `rate` messages a second on average, bursts up to `burst`.

A client that keeps sending into an empty bucket (a debt of another full burst) is flooding
and gets closed; one that merely bursts gets `rate_limited` errors and keeps its socket.
"""

from __future__ import annotations

import time


class TokenBucket:
    __slots__ = ("_burst", "_debt", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._debt = 0.0
        self._last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        refill = (now - self._last) * self._rate
        self._tokens = min(self._burst, self._tokens + refill)
        self._debt = max(0.0, self._debt - refill)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self._debt += 1.0
        return False

    def refund(self) -> None:
        """Give back the token of a message `take` admitted that will be taken again (handled later)."""
        self._tokens = min(self._burst, self._tokens + 1.0)

    def flooding(self) -> bool:
        return self._debt >= self._burst

"""One cached value plus the two timing facts every tier needs to keep it fresh.

The expiry and the loader's duration travel with the value (in tier 1 next to the object,
in tier 2 inside the encoded envelope) so that any instance reading it can decide to refresh
early (XFetch) without another round trip to ask Redis for the key's TTL.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# -ln(u) exceeds this with probability e^-40: past that distance from expiry an early refresh
# is impossible in practice, so the hot path can skip the random draw and the logarithm.
_XFETCH_HORIZON = 40.0


@dataclass(frozen=True, slots=True)
class Entry:
    """A value, when it stops being valid (wall clock, seconds) and how long it took to load.

    `value is None` is the negative-cache marker: the loader said "no such thing", and we
    remember that briefly so a flood of lookups for a missing id does not reach the database.
    """

    value: Any
    expires_at: float
    delta: float = 0.0

    @property
    def missing(self) -> bool:
        return self.value is None

    def capped(self, latest_expiry: float) -> Entry:
        """The same entry, expiring no later than `latest_expiry`."""
        if self.expires_at <= latest_expiry:
            return self
        return Entry(self.value, latest_expiry, self.delta)


def should_refresh_early(
    entry: Entry,
    now: float,
    *,
    beta: float,
    min_delta: float,
    rand: Callable[[], float] = random.random,
) -> bool:
    """XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): probabilistic early expiration.

    Each reader refreshes early with a probability that rises exponentially as expiry nears,
    scaled by how long the value takes to recompute. One reader of a hot key refreshes it
    shortly before it expires; the rest keep being served, so the key never expires for
    everyone at once. `min_delta` is a floor on the recompute time so that very fast loaders
    (sub-millisecond) still get a useful refresh window.
    """
    if entry.value is None or beta <= 0:
        return False
    delta = max(entry.delta, min_delta) * beta
    if entry.expires_at - now > delta * _XFETCH_HORIZON:
        return False
    return now - delta * math.log(1.0 - rand()) >= entry.expires_at

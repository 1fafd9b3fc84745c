"""The maintenance lease: which instance runs the scheduled jobs. Held for `seconds`, renewed by
its holder every third of that; when the holder dies its lease runs out and another instance takes
it. `ProcessLease` is the embedded server's (one process: always held); `RedisLease`
(redis_lease.py) is the scale-out one.

A holder only trusts its lease until the moment it sent its last successful renewal plus the lease
time (minus a margin): if it cannot reach Redis it stops starting jobs and interrupts the running
one before anyone else can have taken over.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeaseView:
    backend: str  # "process" or "redis"
    holder: str | None  # the instance holding it; None: nobody (or Redis could not be asked: see error)
    expires_in: float | None  # seconds until it runs out unless renewed
    error: str | None = None


class Lease(ABC):
    backend = "abstract"

    def __init__(self, instance_id: str, seconds: float) -> None:
        self.instance_id = instance_id
        self.seconds = seconds
        self.valid_until = 0.0  # time.monotonic() up to which this process may act as the holder

    @property
    def held(self) -> bool:
        return time.monotonic() < self.valid_until

    @property
    def margin(self) -> float:
        """Stop acting as the holder this long before the lease could have run out elsewhere."""
        return min(1.0, self.seconds / 10)

    @abstractmethod
    async def hold(self) -> bool:
        """Take the lease if it is free, renew it if it is ours; True if this instance holds it now.
        Raises on a backend error (the lease stays valid until `valid_until`)."""

    @abstractmethod
    async def release(self) -> None:
        """Give the lease up if it is ours (a clean stop: the next holder need not wait it out)."""

    @abstractmethod
    async def view(self) -> LeaseView:
        """Who holds the lease, as the backend says now."""


class ProcessLease(Lease):
    """Embedded mode: one process, so it always holds the lease."""

    backend = "process"

    async def hold(self) -> bool:
        self.valid_until = math.inf
        return True

    async def release(self) -> None:
        self.valid_until = 0.0

    async def view(self) -> LeaseView:
        return LeaseView(self.backend, self.instance_id if self.held else None, None)

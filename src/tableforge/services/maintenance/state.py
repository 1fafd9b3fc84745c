"""What the runtime keeps of the maintenance scheduler: the lease and this instance's view of the
jobs. The scheduler (scheduler.py) and the admin routes read and change it; it imports nothing
that imports the runtime, so `services/runtime.py` can hold it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from tableforge.services.maintenance.lease import Lease


@dataclass
class MaintenanceState:
    lease: Lease
    started_at: float = field(default_factory=time.time)  # when this instance started (epoch seconds)
    # Jobs with an at-start schedule this process has run since it started (as the lease holder).
    done_at_start: set[str] = field(default_factory=set)
    # Periodic jobs: when this instance, as the holder, will next start each (epoch seconds).
    next_due: dict[str, float] = field(default_factory=dict)
    loop: asyncio.Task[None] | None = None  # the scheduler's loop
    current: asyncio.Task[None] | None = None  # the scheduled run in progress, if any
    current_job: str | None = None

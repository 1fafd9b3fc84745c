"""Maintenance schedules as pure rules: the job names, how a schedule is written in the settings,
and when a job is next due. No I/O: the scheduler (services/maintenance) feeds in what the runs
table says and the clock.

A periodic job runs once per *slot*: the slots are the multiples of its interval since the Unix
epoch (UTC), so every instance computes the same slot for the same moment without talking to the
others, and the runs table can refuse a second run of one slot (a unique index on job + slot).
A slot whose run failed is tried again after a pause, a few times; then it waits for the next slot.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, get_args

JobName = Literal["optimize", "event_history", "sessions", "assets", "warm_catalog"]
JOB_NAMES: tuple[str, ...] = get_args(JobName)

Outcome = Literal["running", "ok", "failed", "abandoned"]
Trigger = Literal["schedule", "start", "api", "cli"]

MIN_INTERVAL = 1.0  # seconds; short ones are for tests, operators use minutes and hours
MAX_INTERVAL = 366 * 86400.0
MAX_ATTEMPTS_PER_SLOT = 3
MAX_RETRY_DELAY = 600.0

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)


def parse_duration(text: str | float | int) -> float:
    """Seconds from `90`, `90s`, `15m`, `6h`, `1.5d`; ValueError with the accepted forms otherwise."""
    if isinstance(text, bool):
        raise ValueError("a duration is a number of seconds or a number with s, m, h or d")
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _DURATION.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a duration: write seconds (90) or a number with s, m, h or d "
                             "(90s, 15m, 6h, 1d)")
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not math.isfinite(value) or value < 0:
        raise ValueError("a duration must be a finite number of seconds, 0 or more")
    return value


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a job runs: every `every` seconds (aligned slots; None: not periodically), and/or once
    after the start of the instance that holds the maintenance lease."""

    every: float | None
    at_start: bool = False

    @property
    def enabled(self) -> bool:
        return self.every is not None or self.at_start

    def describe(self) -> str:
        """The setting's canonical text (what `parse_schedule` reads back)."""
        parts = (["start"] if self.at_start else []) + ([format_duration(self.every)] if self.every else [])
        return ",".join(parts) or "off"


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_schedule(text: str) -> Schedule:
    """`off`, `start`, a duration (`6h`), or `start,<duration>`; ValueError that says what is wrong."""
    items = [item.strip().lower() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError("empty schedule: write off, start, an interval such as 6h, or start,6h")
    if items == ["off"]:
        return Schedule(None, False)
    at_start = "start" in items
    rest = [i for i in items if i != "start"]
    if "off" in items or items.count("start") > 1 or len(rest) > 1:
        raise ValueError(f"{text!r}: write off, start, one interval (6h), or start and one interval (start,6h)")
    every = None
    if rest:
        every = parse_duration(rest[0])
        if not MIN_INTERVAL <= every <= MAX_INTERVAL:
            raise ValueError(f"{text!r}: the interval must be between 1s and 366d")
    return Schedule(every, at_start)


def slot_of(now: float, every: float) -> float:
    """The start of the slot `now` falls in (epoch seconds)."""
    return math.floor(now / every) * every


def retry_delay(every: float) -> float:
    """Pause before a failed slot is tried again: a quarter of the interval, at most 10 minutes."""
    return min(every / 4, MAX_RETRY_DELAY)


@dataclass(frozen=True, slots=True)
class SlotRuns:
    """What the runs table holds for one job's current slot."""

    done: bool = False  # a run of this slot succeeded or is running
    failures: int = 0  # failed or abandoned runs of this slot
    last_failure_end: float | None = None  # when the latest of those ended (epoch seconds)


def next_due(every: float, now: float, slot_runs: SlotRuns, not_before: float = 0.0) -> float:
    """When the next scheduled run of a periodic job should start (epoch seconds; `<= now`: now).

    The current slot's run is due at once unless it is done or has used its attempts; after a
    failure, not before `retry_delay`. Otherwise the next slot's start. Never before `not_before`
    (the instance's start-up delay)."""
    slot = slot_of(now, every)
    following = slot + every
    if slot_runs.done or slot_runs.failures >= MAX_ATTEMPTS_PER_SLOT:
        return max(following, not_before)
    due = slot
    if slot_runs.failures and slot_runs.last_failure_end is not None:
        due = slot_runs.last_failure_end + retry_delay(every)
        if due >= following:
            return max(following, not_before)
    return max(due, not_before)

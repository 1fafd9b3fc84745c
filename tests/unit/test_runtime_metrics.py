"""The process-health metrics an operator reads when every socket of an instance stalls at once."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time

from prometheus_client import REGISTRY

from tableforge.observability import metrics


def _count(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_gc_pauses_are_timed_by_generation() -> None:
    metrics.track_gc_pauses()
    metrics.track_gc_pauses()  # idempotent: one callback, one observation per collection
    gc.disable()  # no automatic collection between the two readings (reading the registry allocates)
    try:
        before = {g: _count("tableforge_gc_pause_seconds_count", {"generation": g}) for g in ("1", "2")}
        gc.collect(1)
        gc.collect(2)
        after = {g: _count("tableforge_gc_pause_seconds_count", {"generation": g}) for g in ("1", "2")}
    finally:
        gc.enable()
    assert after["1"] - before["1"] == 1 and after["2"] - before["2"] == 1


async def test_event_loop_lag_sees_a_blocked_loop() -> None:
    before_n = _count("tableforge_event_loop_lag_seconds_count")
    before_slow = before_n - _count("tableforge_event_loop_lag_seconds_bucket", {"le": "0.1"})
    monitor = asyncio.create_task(metrics.monitor_loop_lag(interval=0.02))
    await asyncio.sleep(0.05)
    time.sleep(0.3)  # noqa: ASYNC251 -- on purpose: a handler that blocks the loop
    await asyncio.sleep(0.05)
    monitor.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await monitor
    n = _count("tableforge_event_loop_lag_seconds_count")
    slow = n - _count("tableforge_event_loop_lag_seconds_bucket", {"le": "0.1"})
    assert n > before_n and slow - before_slow == 1  # exactly the one late timer, over 100 ms late

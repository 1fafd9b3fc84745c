"""The process-health metrics an operator reads when every socket of an instance stalls at once."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time

from prometheus_client import REGISTRY
from tests.support.waiting import wait_until

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
    def slow_count() -> float:
        return _count("tableforge_event_loop_lag_seconds_count") - \
            _count("tableforge_event_loop_lag_seconds_bucket", {"le": "0.1"})

    before_n = _count("tableforge_event_loop_lag_seconds_count")
    monitor = asyncio.create_task(metrics.monitor_loop_lag(interval=0.02))
    try:
        await wait_until(lambda: _count("tableforge_event_loop_lag_seconds_count") > before_n,
                         what="the monitor's first sample")
        before_slow = slow_count()
        before_sum = _count("tableforge_event_loop_lag_seconds_sum")
        blocked_at_n = _count("tableforge_event_loop_lag_seconds_count")
        # The scenario: a handler that blocks the loop for 0.3 s. The monitor's timer was due within
        # 0.02 s of the block's start, so the first sample after it is at least 0.28 s late.
        time.sleep(0.3)  # noqa: ASYNC251 -- on purpose
        await wait_until(lambda: _count("tableforge_event_loop_lag_seconds_count") > blocked_at_n,
                         what="the sample after the block")
    finally:
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
    assert slow_count() - before_slow >= 1  # a sample over 100 ms late (others may be late too on a busy machine)
    assert _count("tableforge_event_loop_lag_seconds_sum") - before_sum >= 0.28

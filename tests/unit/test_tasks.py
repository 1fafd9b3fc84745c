"""`tasks.stop` ends a task even when the task lost a cancellation (Python 3.11's `wait_for` drops one
that arrives with its inner result: redis-py's socket writes), where `cancel(); await task` hangs."""

from __future__ import annotations

import asyncio

from tableforge import tasks


async def _heartbeat_that_loses_one_cancellation(beats: list[int]) -> None:
    """A periodic loop whose first cancellation is swallowed, as `wait_for` does in the race."""
    lost = False
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if lost:
                raise
            lost = True  # carries on as if the cancellation had never come
        beats.append(1)


async def test_stop_ends_a_task_that_lost_a_cancellation() -> None:
    beats: list[int] = []
    task = asyncio.ensure_future(_heartbeat_that_loses_one_cancellation(beats))
    await asyncio.sleep(0.03)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=0.2)
    assert not done, "the plain cancel was lost: a bare `await task` would wait forever here"
    await tasks.stop([task], recancel_after=0.05)
    assert task.cancelled()


async def test_stop_lets_clean_up_finish_and_collects_errors() -> None:
    cleaned: list[str] = []

    async def with_clean_up() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.05)  # a goodbye that takes a moment: not cut short
            cleaned.append("done")

    async def failing() -> None:
        raise RuntimeError("already failed")

    a, b = asyncio.ensure_future(with_clean_up()), asyncio.ensure_future(failing())
    await asyncio.sleep(0)
    await tasks.stop([a, b, None])
    assert cleaned == ["done"] and a.cancelled() and isinstance(b.exception(), RuntimeError)

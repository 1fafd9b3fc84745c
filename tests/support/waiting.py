"""Deterministic waiting: poll a condition, fail (never hang) after a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def wait_until(predicate: Callable[[], bool], within: float = 10.0, what: str = "condition") -> None:
    """Poll until `predicate()` holds; fail after `within` seconds."""
    await eventually(_as_async(predicate), within, what, poll=0.01)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0, what: str = "condition",
                     poll: float = 0.02) -> None:
    """Like `wait_until`, for a check that has to ask a server (Redis, HTTP)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(poll)


def poll_until(predicate: Callable[[], bool], within: float = 10.0, what: str = "condition",
               poll: float = 0.1) -> None:
    """`wait_until` for synchronous code (a fixture starting a process, Playwright's sync API)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(poll)


def _as_async(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return predicate()

    return check

"""At most N image checks (Pillow) at once per process, each in a worker thread.

Decoding holds the image's buffers in memory: four large uploads checked at once raised RSS by
143 MB. Uploads beyond N wait for a slot (in arrival order) for a bounded time, then get 503
`server_busy` with Retry-After rather than piling up in memory or hanging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from tableforge.domain.errors import Unavailable
from tableforge.observability import metrics

T = TypeVar("T")


class DecodeGate:
    def __init__(self, limit: int, wait_seconds: float) -> None:
        self.limit = limit
        self.wait_seconds = wait_seconds
        self.active = 0
        self._slots = asyncio.Semaphore(limit)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` in a thread, once a slot is free."""
        if self._slots.locked():
            metrics.IMAGE_DECODE_WAITS.inc()
        try:
            await asyncio.wait_for(self._slots.acquire(), self.wait_seconds)
        except TimeoutError:
            metrics.IMAGE_DECODES_REFUSED.inc()
            raise Unavailable("the server is busy checking other images: try again shortly", code="server_busy",
                              headers={"Retry-After": "5"}) from None
        self.active += 1
        metrics.IMAGE_DECODES_ACTIVE.inc()
        metrics.IMAGE_DECODE_CONCURRENCY.observe(self.active)
        # The slot is freed when the thread ends, not when the caller stops waiting: a client that
        # hangs up mid-check must not let another decode start beside the one still running.
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        task.add_done_callback(self._done)
        return await asyncio.shield(task)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self.active -= 1
        metrics.IMAGE_DECODES_ACTIVE.dec()
        self._slots.release()
        if not task.cancelled():
            task.exception()  # retrieved here too, in case the caller is gone

"""At most N uploaded images in process at once per process: read into memory, checked by Pillow
(in a worker thread), stored.

Each upload holds its whole file in memory (plus Pillow's buffers) while it is checked: four large
uploads at once raised RSS by 143 MB. The multipart parser has already spooled the file to disk
before the route runs, so an upload that waits for a slot costs disk, not memory. Waiting is in
arrival order and bounded: past it, 503 `server_busy` with Retry-After rather than a pile-up in
memory or a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tableforge.domain.errors import Unavailable
from tableforge.observability import metrics


class DecodeGate:
    def __init__(self, limit: int, wait_seconds: float) -> None:
        self.limit = limit
        self.wait_seconds = wait_seconds
        self.active = 0
        self._slots = asyncio.Semaphore(limit)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the `limit` slots for the body of the `async with`."""
        if self._slots.locked():
            # (Not wait_for: its extra task would take the slot later than this check, so every
            # upload arriving in the same tick would see a free slot and none would count as waiting.)
            metrics.IMAGE_DECODE_WAITS.inc()
            try:
                async with asyncio.timeout(self.wait_seconds):
                    await self._slots.acquire()
            except TimeoutError:
                metrics.IMAGE_DECODES_REFUSED.inc()
                raise Unavailable("the server is busy with other uploads: try again shortly", code="server_busy",
                                  headers={"Retry-After": "5"}) from None
        else:
            await self._slots.acquire()  # free: taken at once, without yielding
        self.active += 1
        metrics.IMAGE_DECODES_ACTIVE.inc()
        metrics.IMAGE_DECODE_CONCURRENCY.observe(self.active)
        try:
            yield
        finally:
            self.active -= 1
            metrics.IMAGE_DECODES_ACTIVE.dec()
            self._slots.release()

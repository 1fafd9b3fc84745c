"""The publishing half of the Redis broker: one bounded outbox and one writer task.

Whatever queued while a round trip was in flight leaves as one pipeline, so a busy instance pays
one round trip per batch, not per message, and Redis sees this instance's publishes in call order.
Redis trouble never raises to the caller: a batch Redis cannot take is handed to `deliver_locally`
(this instance's own share still reaches its sockets) and the outbox stays "down" (no round trips,
no stalls) until the subscriber proves Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tableforge.observability.logging import get_logger
from tableforge.observability.metrics import Children

log = get_logger(__name__)

PUBLISHES = Counter("tableforge_broker_publishes_total", "Messages handed to Redis, by kind", ["kind"])
DROPPED = Counter(
    "tableforge_broker_dropped_total",
    "Messages not published: outbox_full (ephemeral under load), redis_down (not sent while Redis was unreachable)"
    ", redis_error (Redis refused it), handler_error (a local handler raised)",
    ["reason"],
)
OUTBOX = Gauge("tableforge_broker_outbox", "Messages waiting to be published", multiprocess_mode="livesum")
PUBLISHED = Children(PUBLISHES)  # these count every message: children bound once


@dataclass(slots=True, eq=False)
class Outgoing:
    """One message in the outbox. `control`: handed to our own control handler when Redis cannot
    bring it back."""

    channel: bytes
    data: bytes
    control: bool = False  # loop back to our control handler when Redis cannot take it
    local_done: bool = False  # already delivered locally
    future: asyncio.Future[None] | None = None
    kind: str = "ephemeral"
    room: str | None = None  # a room message's room: its PUBLISH reply goes to `on_replies`


class Outbox:
    def __init__(self, client: Redis, *, limit: int, batch_max: int,
                 deliver_locally: Callable[[Sequence[Outgoing]], None], subscribed: Callable[[], bool],
                 on_failure: Callable[[str], None], epoch: Callable[[], int] = lambda: 0,
                 on_replies: Callable[[Sequence[str | None], list[Any], int], None] | None = None) -> None:
        self._client = client
        self._limit = limit
        self._batch_max = batch_max
        self._deliver_locally = deliver_locally
        self._subscribed = subscribed
        self._on_failure = on_failure
        self._epoch = epoch  # read before each pipeline, handed to on_replies with its replies
        self._on_replies = on_replies
        self._queue: deque[Outgoing] = deque()
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.down = False  # Redis failed us: until the subscriber proves it is back

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def full(self) -> bool:
        return len(self._queue) >= self._limit

    def start(self, name: str) -> asyncio.Task[None]:
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._write_loop(), name=name)
        return self._task

    async def flush(self, seconds: float) -> None:
        """Wait (bounded) until what is queued has been sent, unless Redis is down."""
        if self._queue and not self.down:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._idle.wait()

    def stop(self) -> None:
        """After the writer task was cancelled: release every waiting caller."""
        self._closing = True
        self._task = None
        self._space.set()
        for item in self._queue:
            if item.future is not None and not item.future.done():
                item.future.set_result(None)
        self._queue.clear()

    async def put_when_room(self, item: Outgoing) -> None:
        """Queue without waiting for Redis, but only once there is room: a stored event is never
        dropped, and a full outbox makes its caller wait. Its caller does not wait for the round trip:
        the event is in the event log already, and an instance that misses it reads it back from there
        (the hub's gap fill); waiting cost every committed change a Redis round trip before its ack,
        and a task switch."""
        while self.full and not self._closing:
            self._space.clear()
            await self._space.wait()
        self.put(item)

    async def put_and_wait(self, item: Outgoing) -> None:
        """Queue and wait until Redis took it (or it was delivered locally): stored events and
        control messages are never dropped, so a full outbox makes the caller wait for room."""
        while self.full and not self._closing:
            self._space.clear()
            await self._space.wait()
        item.future = asyncio.get_running_loop().create_future()
        self.put(item)
        await asyncio.shield(item.future)  # a caller that is cancelled still gets its message out

    def put(self, item: Outgoing, *, first: bool = False) -> None:
        if self._closing or self._task is None:
            # Not running: nothing would send it, so at least this instance sees it.
            self._deliver_locally([item])
            _resolve([item])
            return
        if first:
            self._queue.appendleft(item)  # ahead of any backlog (the liveness probe)
        else:
            self._queue.append(item)
        self._idle.clear()
        self._wake.set()

    async def _write_loop(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                self._idle.set()
                OUTBOX.set(0)
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [queue.popleft() for _ in range(min(len(queue), self._batch_max))]
            OUTBOX.set(len(queue))
            if len(queue) < self._limit:
                self._space.set()
            try:
                if not self._subscribed():
                    # It would not come back to us through Redis: deliver our share right away.
                    self._deliver_locally(batch)
                if self.down:
                    self._deliver_locally(batch)
                    DROPPED.labels("redis_down").inc(len(batch))
                else:
                    await self._send(batch)
            except asyncio.CancelledError:
                _resolve(batch)
                raise
            except Exception:
                log.exception("broker.write_failed")
                self._deliver_locally(batch)
            _resolve(batch)

    async def _send(self, batch: list[Outgoing]) -> None:
        """Publish `batch` in one pipeline; retry once on a fresh connection, then deliver locally."""
        for attempt in range(2):
            epoch = self._epoch()
            try:
                results = await self._pipeline(batch)
            except (RedisError, OSError) as exc:
                if attempt == 0 and self._subscribed():
                    continue  # maybe one stale pooled connection: try a fresh one
                log.warning("broker.publish_failed", error=repr(exc), messages=len(batch))
                self.down = True
                self._deliver_locally(batch)
                self._on_failure("publish failed")
                return
            for item, result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    log.warning("broker.publish_refused", error=repr(result))
                    DROPPED.labels("redis_error").inc()
                    self._deliver_locally([item])
                else:
                    PUBLISHED[item.kind].inc()
            if self._on_replies is not None:
                self._on_replies([item.room for item in batch], results, epoch)
            return

    async def _pipeline(self, batch: Sequence[Outgoing]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for item in batch:
                pipe.publish(item.channel, item.data)
            results: list[Any] = await pipe.execute(raise_on_error=False)
            return results


def _resolve(batch: Sequence[Outgoing]) -> None:
    for item in batch:
        if item.future is not None and not item.future.done():
            item.future.set_result(None)

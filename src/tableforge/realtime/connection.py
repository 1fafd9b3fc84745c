"""One local WebSocket: its identity, the rooms it joined, and a bounded send queue.

The writer task drains the queue; a socket whose queue is full is a reader too slow to keep
up and is closed (1013) rather than allowed to grow memory. The writer waits for a frame on a future
made for that wait, and a drain on one made when it is asked for: an asyncio.Event would cost each of
the instance's thousands of idle sockets ~0.9 KB for its waiters' deque, twice. Ephemeral frames
(preview moves, pointers) are dropped first, once the queue is half full.

The close frame of a slow reader can only go out once the transport's buffer drains (the ASGI
server holds every send, the close included, until the socket is writable), so the socket's
handler waits for it, for at most CLOSE_SECONDS, before it returns: returning first would let the
server drop the connection with no close frame, and the client would see a bare EOF.

When the writer is idle (nothing queued, nothing in flight), `send` writes the frame at once through
the ASGI server's synchronous write (`WRITE_NOW`, offered by `wiring.ws_protocol`) instead of waking
the writer: same order, same bytes, no task switch per frame. The queue and the writer take over as
soon as the transport pushes back or a frame is already waiting.

A socket whose client announced `batch` (in `join`) gets the frames that queued up as one
`{"type":"batch","frames":[…]}` message: one write and one WebSocket frame instead of one per frame.
Frames queue up while the transport pushes back and, on the synchronous write, for the rest of the
event loop's turn that sent the first of them (a loaded instance handles many messages per turn).
Nothing waits to fill a batch: a socket that keeps up still gets single frames, a loaded instance
sends fewer, larger messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from tableforge.observability import metrics

CLOSE_SLOW_CONSUMER = 1013
FLUSH_SECONDS = 1.0
CLOSE_SECONDS = 10.0  # as long as the server's own closing handshake may take (uvicorn's close_timeout)
# One batch holds at most this many frames and characters (under the 64 KiB frame limit clients are
# told about; a longer frame goes alone): a client never gets a message it cannot read.
BATCH_MAX_FRAMES = 64
BATCH_MAX_CHARS = 60_000
_BATCH_HEAD = '{"type":"batch","frames":['
# The ASGI scope extension under which the server offers `write_now(text) -> bool` (see above).
WRITE_NOW = "tableforge.ws.write_now"
# The ASGI scope extension under which the server takes a `hook(text) -> bool` that sees each text
# message first while nothing is queued before it (True: handled; see wiring/ws_protocol.py).
ON_TEXT = "tableforge.ws.on_text"
TextHook = Callable[[str], bool]
SendText = Callable[[str], Awaitable[None]]
WriteNow = Callable[[str], bool]
CloseSocket = Callable[[int, str], Awaitable[None]]


class _EndOfTurn:
    """The batch readers that got a first frame during this turn of the event loop: one callback at
    the end of the turn writes each one's frames (one message per socket), not one per socket."""

    __slots__ = ("_loop", "_sockets")

    def __init__(self) -> None:
        self._sockets: list[Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        if not self._sockets or loop is not self._loop:  # (a loop that stopped left its list behind)
            self._sockets = []
            self._loop = loop
            loop.call_soon(self._write)
        self._sockets.append(conn)

    def _write(self) -> None:
        sockets, self._sockets = self._sockets, []
        for conn in sockets:
            conn._write_queued()


_END_OF_TURN = _EndOfTurn()


class Connection:
    __slots__ = ("_close_after", "_close_socket", "_closing", "_flush", "_idle", "_queue", "_send", "_wake", "_writer",
                 "batch", "busy", "close_code", "closed", "conn_id", "max_queue", "owner", "peer_code", "profile",
                 "refused_at", "rooms", "session_id", "user_id", "username", "write_now")

    def __init__(self, conn_id: str, user_id: str, username: str, send: SendText, close: CloseSocket,
                 max_queue: int) -> None:
        self.conn_id = conn_id
        self.user_id = user_id
        self.username = username
        # The session (token hash) the socket authenticated with: logout closes only its sockets.
        self.session_id = ""
        # What other players see of this user (set by the endpoint), for presence events.
        self.profile: dict[str, Any] = {}
        self.rooms: dict[str, str] = {}  # room_id -> role in that room
        self.refused_at = -1.0  # when a refused preview was last explained (one error a second)
        self.max_queue = max_queue
        self.closed = False
        self.batch = False  # the client reads batch frames (announced in `join`)
        self.close_code: int | None = None  # the server's, when it closed the socket
        self.peer_code: int | None = None  # the client's (1006: the connection dropped without one)
        self._flush = False  # closing politely: frames already queued still go out (bounded)
        # The reader is handling a message (set by the endpoint): a polite close waits for its answer.
        self.busy = False
        self._close_after: tuple[int, str] | None = None
        self._send = send
        # The server's synchronous write, if it offers one (set by the endpoint from the scope).
        self.write_now: WriteNow | None = None
        self._close_socket = close
        self._queue: deque[str] = deque()
        self._wake: asyncio.Future[None] | None = None  # the writer waits on it while the queue is empty
        self._idle: asyncio.Future[None] | None = None  # a drain waits on it until the queue is empty
        self._writer: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        # The task reading this socket: cancelled on close, because a stalled peer would never
        # answer the closing handshake and its reader would wait forever.
        self.owner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.conn_id}")

    def send(self, text: str, *, ephemeral: bool = False) -> bool:
        """Queue a frame without waiting. False if it was dropped (or the socket is closing)."""
        if self.closed:
            return False
        depth = len(self._queue)
        if depth >= self.max_queue:
            self.close(CLOSE_SLOW_CONSUMER, "slow consumer: send queue full")
            metrics.WS_CLOSED_BY_REASON["slow_consumer"].inc()
            return False
        if ephemeral and depth >= self.max_queue // 2:
            metrics.WS_DROPPED_BY_KIND["ephemeral"].inc()
            return False
        if not depth:
            wake = self._wake
            if wake is not None and not wake.done() and self.write_now is not None:
                # The writer is parked (nothing of ours in flight), so writing from here keeps the order.
                if not self.batch:
                    if self.write_now(text):
                        return True
                else:
                    # What this turn of the event loop sends to the socket goes out as one message.
                    self._queue.append(text)
                    _END_OF_TURN.add(self)
                    return True
            self._queue.append(text)
            self._wake_writer()
            return True
        self._queue.append(text)
        return True

    def _write_queued(self) -> None:
        """Write what queued up (as batches) through the server's synchronous write while the writer
        stays parked; the writer takes over what the transport does not take now."""
        queue = self._queue
        wake = self._wake
        if self.write_now is None or wake is None or wake.done():
            return  # closed (the queue is the close's to flush), or the writer is awake and has it
        if len(queue) == 1:  # the common case: one frame this turn
            if self.write_now(queue[0]):
                queue.clear()
            else:
                self._wake_writer()
            return
        while queue:
            text, count = self._next_message()
            if not self.write_now(text):
                self._wake_writer()
                return
            self._taken(count)

    def _wake_writer(self) -> None:
        waiter = self._wake
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def close(self, code: int, reason: str = "", *, flush: bool = False) -> None:
        """Stop accepting frames and close the socket (from any task, without waiting). With
        `flush`, what is already queued (e.g. the error that explains the close) is sent first,
        for at most FLUSH_SECONDS; a slow consumer is closed without it."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self._flush = flush
        if not flush:
            self._queue.clear()
        self._closing = asyncio.get_running_loop().create_task(self._close(code, reason, asyncio.current_task()))

    @property
    def closing(self) -> bool:
        """Closed, or to be closed as soon as the message being handled is answered."""
        return self.closed or self._close_after is not None

    def close_when_idle(self, code: int, reason: str = "") -> None:
        """Close as `close(flush=True)` does, but only once the message being handled (if any) has
        its answer queued: a drain must not cut a request between its commit and its ack. So every
        message read from the socket is answered before the close frame, and one left unanswered
        was never read: the client may send it again after reconnecting."""
        if self.closed:
            return
        if self.busy:
            self._close_after = (code, reason)
            return
        # Idle, the reader waits for the next frame: stop it now rather than after the flush, or it
        # could read (and apply) one more message whose answer the closed socket would drop.
        reader, self.owner = self.owner, None
        self.close(code, reason, flush=True)
        if reader is not None and reader is not asyncio.current_task() and not reader.done():
            reader.cancel()

    def handled(self) -> None:
        """The endpoint finished a message: a polite close that waited for it happens now."""
        self.busy = False
        if self._close_after is not None:
            code, reason = self._close_after
            self._close_after = None
            self.close(code, reason, flush=True)

    async def close_sent(self) -> None:
        """Until the close frame (and what was queued before it) is handed to the server: a drain must
        not let the process stop before, or an answer already queued could be cut off."""
        closing = self._closing
        if closing is not None and not closing.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(closing)

    async def _flushed(self) -> None:
        writer = self._writer
        if self._flush and self._queue and writer is not None and writer is not asyncio.current_task():
            self._wake_writer()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(writer), FLUSH_SECONDS)

    async def _close(self, code: int, reason: str, caller: asyncio.Task[Any] | None) -> None:
        await self._flushed()
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
        # The reader is cancelled (a stalled peer never answers the close), unless it is the one
        # closing: it then leaves its loop by itself, and must not be cut off mid-cleanup.
        if self.owner is not None and self.owner is not caller and not self.owner.done():
            self.owner.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_SECONDS):
                await self._close_socket(code, reason[:120])

    async def drain(self, seconds: float) -> None:
        """Give the writer a moment to flush what is queued (used before a clean close)."""
        if not self._queue or self.closed:
            return
        idle = self._idle
        if idle is None or idle.done():
            idle = self._idle = asyncio.get_running_loop().create_future()
        await asyncio.wait((idle,), timeout=seconds)  # never cancels it: other drains may wait on it too

    async def stop(self) -> None:
        """The socket's handler is done with it: stop writing and, if we are closing it, wait
        (bounded) until the close frame is handed over, so it is not lost with the connection."""
        self.closed = True
        await self._flushed()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        closing = self._closing
        if closing is not None and closing is not asyncio.current_task() and not closing.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(closing)

    def _next_message(self) -> tuple[str, int]:
        """The next message to write and how many queued frames it carries, left in the queue: the
        oldest frame alone, or for a batch reader as many as fit in one batch (in order)."""
        queue = self._queue
        first = queue[0]
        if not self.batch or len(queue) == 1:
            return first, 1
        parts = [first]
        size = len(first)
        for text in itertools.islice(queue, 1, BATCH_MAX_FRAMES):
            size += len(text) + 1
            if size >= BATCH_MAX_CHARS:
                break
            parts.append(text)
        if len(parts) == 1:
            return first, 1
        return _BATCH_HEAD + ",".join(parts) + "]}", len(parts)

    def _taken(self, count: int) -> None:
        queue = self._queue
        for _ in range(count):
            queue.popleft()
        if count > 1:
            metrics.WS_BATCHES.inc()
            metrics.WS_BATCHED_FRAMES.inc(count)

    async def _write_loop(self) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        try:
            while not self.closed or (self._flush and queue):
                while queue:
                    text, count = self._next_message()
                    self._taken(count)
                    await self._send(text)
                idle, self._idle = self._idle, None
                if idle is not None and not idle.done():
                    idle.set_result(None)
                # Nothing queued, and no await since the check: a frame sent from now on resolves this.
                self._wake = loop.create_future()
                await self._wake
                self._wake = None
        except asyncio.CancelledError:
            raise
        except Exception:
            # The peer went away mid-send: the reader loop sees the disconnect and cleans up.
            self.closed = True

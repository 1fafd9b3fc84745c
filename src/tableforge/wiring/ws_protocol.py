"""uvicorn's websockets-sansio protocol, less what a long-lived socket holds but never uses again.

An instance holds thousands of sockets, most of them idle for hours. Per socket, uvicorn keeps the
handshake's request and response (two header maps: ~20 small lists and dicts), an asyncio.Queue for
the frames read (three deques of ~760 bytes each: items, getters, putters) and an asyncio.Event for
write flow control (one more deque). Here the handshake objects are dropped once the socket is
accepted, and the inbox and the writable gate are small slotted objects that make a future only while
something waits on them. Measured in docs/benchmarks.md ("10,000 sockets on one instance").

It also offers the app a synchronous write (`realtime.connection.WRITE_NOW`, an ASGI server extension
in the socket's scope): a text frame handed straight to the transport when nothing else is waiting
to go out. Through ASGI every frame costs a wake-up of the socket's writer task and a chain of
coroutines (Starlette's `send_text`, this protocol's `send`, its flow-control wait) before the same
`transport.write`; a room's fan-out writes one frame to each of its sockets, so that chain was most of
the CPU of a delivery. The frame's bytes are serialised once per text, not once per socket: fan-out
hands every socket of an audience the same string.

And it lets the app take a text message as it arrives (`realtime.connection.ON_TEXT`: the app hands
the protocol a `hook(text) -> bool`). A message that nothing else is waiting before (the app's inbox is
empty) goes to the hook first; True means the app has handled it, False that it goes to the inbox as
usual. A drag's preview frames are most of what players send, and each one through the inbox cost a
wake-up of the socket's task, the ASGI receive chain, and pausing and resuming the transport's reads.

`serve` passes this class to uvicorn for `TABLEFORGE_WS_IMPLEMENTATION=websockets-sansio` (the default).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from tableforge.realtime.connection import ON_TEXT, WRITE_NOW, TextHook


class Inbox:
    """What asyncio.Queue does for uvicorn's protocol (put_nowait, get, empty), for one reader: the
    ASGI app's `receive`. Unbounded as uvicorn's queue is; uvicorn pauses reading the transport after
    each message until the app has read it, so it holds a message or two."""

    __slots__ = ("_getter", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            if self._getter is not None:
                raise RuntimeError("a socket's messages are read by one task at a time")
            getter = self._getter = asyncio.get_running_loop().create_future()
            try:
                await getter
            finally:
                self._getter = None
        return self._items.pop(0)


class Gate:
    """What asyncio.Event does for uvicorn's write flow control (set, clear, wait): open unless the
    transport's buffer is over its high-water mark. Any number of senders may wait."""

    __slots__ = ("_open", "_waiters")

    def __init__(self) -> None:
        self._open = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        self._open = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._open = False

    async def wait(self) -> bool:
        if self._open:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class LastFrame:
    """The wire bytes of the text last written: fan-out writes one string to every socket of an
    audience in a row, so one entry serves them all. Holding the string keeps the identity test
    sound (its id cannot be reused while it is held)."""

    __slots__ = ("frame", "text")

    def __init__(self) -> None:
        self.text: str | None = None
        self.frame = b""

    def of(self, text: str) -> bytes:
        if text is not self.text:
            # A server's frames are unmasked and, with no extension negotiated, what websockets'
            # ServerProtocol.send_text would queue for the same text.
            self.frame = Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
            self.text = text
        return self.frame


_LAST = LastFrame()


class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Gate()  # type: ignore[assignment]
        self.on_text: TextHook | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        # uvicorn reports a socket that dropped without a close frame as 1005 (no status code), the code of a
        # close frame without one; RFC 6455 calls it 1006, and the app tells the two apart (a dropped player's
        # presence lingers: services/departures.py). The reader stops at the first disconnect it reads.
        if self.handshake_complete and not self.disconnected and self.conn.close_rcvd is None:
            self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
        super().connection_lost(exc)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][WRITE_NOW] = self.write_now
            scope["extensions"][ON_TEXT] = self.set_on_text

    def set_on_text(self, hook: TextHook | None) -> None:
        self.on_text = hook

    def send_receive_event_to_app(self) -> None:
        hook = self.on_text
        if hook is None or self.curr_msg_data_type != "text" or self.close_sent or not self.queue.empty():
            super().send_receive_event_to_app()
            return
        frames = self.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            super().send_receive_event_to_app()  # closes with 1007, as for any other message
            return
        self.frames = []
        if hook(text):
            return
        self.queue.put_nowait({"type": "websocket.receive", "text": text})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def write_now(self, text: str) -> bool:
        """Write one text frame now if the socket is open, writable and plain (no extension such as
        permessage-deflate, whose frames depend on the ones before); False if the caller must go
        through ASGI `send` instead (it then waits for the transport like any other frame)."""
        if (self.close_sent or self.disconnected or not self.handshake_complete or not self.writable.is_set()
                or self.conn.state is not State.OPEN or self.conn.extensions or self.transport.is_closing()):
            return False
        self.transport.write(_LAST.of(text))
        return True

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Read only while the handshake is answered (the response's headers are sent above).
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]

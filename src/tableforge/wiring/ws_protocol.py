"""uvicorn's websockets-sansio protocol, less what a long-lived socket holds but never uses again.

An instance holds thousands of sockets, most of them idle for hours. Per socket, uvicorn keeps the
handshake's request and response (two header maps: ~20 small lists and dicts), an asyncio.Queue for
the frames read (three deques of ~760 bytes each: items, getters, putters) and an asyncio.Event for
write flow control (one more deque). Here the handshake objects are dropped once the socket is
accepted, and the inbox and the writable gate are small slotted objects that make a future only while
something waits on them. Measured in docs/benchmarks.md ("10,000 sockets on one instance").

`serve` passes this class to uvicorn for `TABLEFORGE_WS_IMPLEMENTATION=websockets-sansio` (the default).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


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


class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Gate()  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Read only while the handshake is answered (the response's headers are sent above).
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]

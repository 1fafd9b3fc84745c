"""Helpers for the scale-out tests: recording handlers, deterministic waiting, a TCP proxy.

The proxy forwards bytes to the real Redis. `freeze()` makes the connections open at that
moment go silent without closing them (a half-open TCP connection, a stuck middlebox), which
is the failure only a liveness probe can notice; new connections still pass.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tableforge.realtime.broker import Broker
from tableforge.realtime.envelope import pack, unpack


async def wait_until(predicate: Callable[[], bool], within: float = 10.0, what: str = "condition") -> None:
    """Poll until `predicate()` holds; fail (not hang) after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0, what: str = "condition") -> None:
    """Like `wait_until`, for a check that has to ask Redis."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


def event(version: int, text: str, sender: str = "") -> bytes:
    """A broker envelope as the hub packs it (version 0: ephemeral)."""
    return pack(version, 1_700_000_000_000.0, sender, text.encode())


@dataclass
class Inbox:
    """What one broker's handlers received, in arrival order."""

    rooms: list[tuple[str, bytes]] = field(default_factory=list)
    controls: list[bytes] = field(default_factory=list)
    resets: int = 0

    def attach(self, broker: Broker) -> None:
        broker.set_handlers(self._room, self.controls.append, self._reset)

    def _room(self, room_id: str, data: bytes) -> None:
        self.rooms.append((room_id, data))

    def _reset(self) -> None:
        self.resets += 1

    def bodies(self, room_id: str | None = None) -> list[str]:
        return [unpack(data).body.decode() for room, data in self.rooms if room_id is None or room == room_id]

    def has(self, text: str) -> bool:
        return text in self.bodies()

    def has_control(self, text: str) -> bool:
        return text.encode() in self.controls


class FreezableProxy:
    """Forwards 127.0.0.1:port to a target; `freeze()` silences the connections open now."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[tuple[asyncio.Event, list[asyncio.StreamWriter]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def freeze(self) -> int:
        """Stop forwarding on every connection open now (they stay open). Returns how many."""
        count = 0
        for frozen, _ in self._links:
            if not frozen.is_set():
                frozen.set()
                count += 1
        return count

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for _, writers in self._links:
            for writer in writers:
                with contextlib.suppress(Exception):
                    writer.transport.abort()
        self._links.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        frozen = asyncio.Event()
        self._links.append((frozen, [writer, up_writer]))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(src, dst, frozen))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, frozen: asyncio.Event) -> None:
        try:
            while data := await src.read(65536):
                if frozen.is_set():
                    continue  # swallowed: the peer waits forever
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not frozen.is_set():
                with contextlib.suppress(Exception):
                    dst.close()

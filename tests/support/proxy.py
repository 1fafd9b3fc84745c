"""A TCP proxy in front of a real server (Redis), for network failures that are not mocks.

`stop()` drops every connection and refuses new ones (`start()` again resumes on the same port);
`freeze()` makes the connections open at that moment go silent without closing them (a half-open
TCP connection, a stuck middlebox), the failure only a liveness probe can notice.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[tuple[asyncio.Event, list[asyncio.StreamWriter]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
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

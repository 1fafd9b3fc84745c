"""A drain's close (Connection.close_when_idle): a message being handled gets its answer before the
close frame; an idle socket's reader is stopped at once so it cannot read (and apply) one more."""

from __future__ import annotations

import asyncio

from tests.support.waiting import wait_until

from tableforge.realtime.connection import Connection


class Peer:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closes: list[tuple[int, str]] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))


async def test_a_busy_socket_closes_after_the_answer_of_the_message_it_handles() -> None:
    peer = Peer()
    conn = Connection("c1", "u1", "alice", peer.send, peer.close, 16)
    conn.start()
    release = asyncio.Event()

    async def reader() -> None:  # the endpoint's loop, handling one message
        conn.busy = True
        await release.wait()  # e.g. the move's database round trip
        conn.send('{"type":"ack","id":1}')
        conn.handled()

    conn.owner = task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    conn.close_when_idle(1012, "server draining")
    assert conn.closing and not conn.closed  # waits for the answer
    conn.close_when_idle(1012, "server draining")  # asked again: still one close
    release.set()
    await task  # the reader was not cancelled: it finished its message
    await conn.stop()
    assert peer.sent == ['{"type":"ack","id":1}']
    assert peer.closes == [(1012, "server draining")]


async def test_an_idle_socket_closes_at_once_and_its_reader_stops_reading() -> None:
    peer = Peer()
    conn = Connection("c2", "u1", "alice", peer.send, peer.close, 16)
    conn.start()
    conn.send("an event already queued")
    frames: asyncio.Queue[str] = asyncio.Queue()
    handled: list[str] = []

    async def reader() -> None:  # waits for the next frame, as the endpoint does between messages
        while not conn.closed:
            handled.append(await frames.get())

    conn.owner = task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    conn.close_when_idle(1012, "server draining")
    frames.put_nowait('{"type":"chat.send"}')  # arrives during the flush: must not be handled
    await wait_until(task.done, what="the reader stopped")
    assert task.cancelled()
    await conn.stop()
    assert handled == []
    assert peer.sent == ["an event already queued"]  # queued frames still go out first
    assert peer.closes == [(1012, "server draining")]

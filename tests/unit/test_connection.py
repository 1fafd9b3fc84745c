"""One socket's send queue, deterministically: a recording send function stands in for the peer, and
a socket whose writer is not started is a reader that never reads, so every depth is exact.

What a player (and the operator) must see: frames in the order they were queued; preview frames
dropped first when the reader falls behind (half the queue); a reader that cannot keep up closed
with 1013 instead of the server's memory growing.
"""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY
from tests.support.waiting import wait_until

from tableforge.realtime.connection import CLOSE_SLOW_CONSUMER, Connection


class Peer:
    """What reaches the socket: the frames written, and the close (code, reason) if any."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closes: list[tuple[int, str]] = []
        self.gate = asyncio.Event()  # cleared: the peer stops reading (send blocks)
        self.gate.set()

    async def send(self, text: str) -> None:
        await self.gate.wait()
        self.sent.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))


def connection(peer: Peer, max_queue: int) -> Connection:
    return Connection("c1", "u1", "alice", peer.send, peer.close, max_queue)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_frames_are_written_in_the_order_they_were_queued() -> None:
    peer = Peer()
    conn = connection(peer, max_queue=8)
    conn.start()
    assert [conn.send(f"f{i}") for i in range(5)] == [True] * 5
    await wait_until(lambda: len(peer.sent) == 5, what="five frames written")
    assert peer.sent == ["f0", "f1", "f2", "f3", "f4"]
    assert conn.queue_depth == 0 and not conn.closed
    await conn.stop()


async def test_ephemeral_frames_are_dropped_from_half_full_and_the_rest_still_queue() -> None:
    peer = Peer()
    conn = connection(peer, max_queue=8)  # writer not started: nothing drains
    dropped = counter("tableforge_ws_dropped_total", kind="ephemeral")
    assert conn.send("move-1") and conn.send("move-2") and conn.send("move-3")
    assert conn.send("preview-at-3", ephemeral=True) is True  # below half: a preview still goes
    assert conn.queue_depth == 4
    assert conn.send("preview-at-4", ephemeral=True) is False  # half full: previews are dropped first
    assert conn.send("preview-again", ephemeral=True) is False
    assert conn.queue_depth == 4
    assert counter("tableforge_ws_dropped_total", kind="ephemeral") == dropped + 2
    assert conn.send("chat-1") is True  # a stored event is never dropped while there is room
    assert conn.queue_depth == 5 and not conn.closed
    # the reader catches up: what was queued arrives, in order, without the dropped previews
    conn.start()
    await wait_until(lambda: len(peer.sent) == 5, what="the queued frames written")
    assert peer.sent == ["move-1", "move-2", "move-3", "preview-at-3", "chat-1"]
    assert conn.send("preview-later", ephemeral=True) is True
    await wait_until(lambda: peer.sent[-1:] == ["preview-later"], what="a preview once the queue drained")
    assert peer.closes == []
    await conn.stop()


async def test_a_full_queue_closes_the_socket_as_too_slow_with_1013() -> None:
    peer = Peer()
    conn = connection(peer, max_queue=4)
    closed_slow = counter("tableforge_ws_closed_total", reason="slow_consumer")
    reader = asyncio.create_task(asyncio.Event().wait())  # the endpoint's reader, waiting on a stalled peer
    conn.owner = reader
    assert [conn.send(f"e{i}") for i in range(4)] == [True] * 4
    assert not conn.closed and conn.queue_depth == 4
    assert conn.send("e4") is False  # the bound: one more frame than the queue holds
    assert conn.closed and conn.close_code == CLOSE_SLOW_CONSUMER == 1013
    assert conn.queue_depth == 0, "a slow consumer's backlog is freed, not flushed"
    await wait_until(lambda: peer.closes != [], what="the close sent to the peer")
    assert peer.closes == [(1013, "slow consumer: send queue full")]
    assert peer.sent == []
    await wait_until(reader.done, what="the reader task cancelled")
    assert reader.cancelled()
    assert counter("tableforge_ws_closed_total", reason="slow_consumer") == closed_slow + 1
    # after the close nothing more is queued, and the socket is closed once
    assert conn.send("late") is False and conn.send("late", ephemeral=True) is False
    conn.close(1000, "again")
    assert conn.close_code == 1013 and conn.queue_depth == 0
    await conn.stop()
    assert peer.closes == [(1013, "slow consumer: send queue full")]


async def test_a_reader_that_stalls_mid_stream_is_closed_once_its_queue_fills() -> None:
    peer = Peer()
    conn = connection(peer, max_queue=3)
    conn.start()
    assert conn.send("first")
    await wait_until(lambda: peer.sent == ["first"], what="the first frame written")
    peer.gate.clear()  # the peer stops reading: the writer is stuck sending "second"
    assert conn.send("second")
    await wait_until(lambda: conn.queue_depth == 0, what="the writer holding the second frame")
    results = [conn.send(f"more-{i}") for i in range(4)]
    assert results == [True, True, True, False]
    assert conn.closed and conn.close_code == 1013
    await wait_until(lambda: peer.closes == [(1013, "slow consumer: send queue full")], what="close 1013")
    peer.gate.set()
    await conn.stop()
    assert peer.sent[:1] == ["first"] and not any(text.startswith("more-") for text in peer.sent)


async def test_a_polite_close_flushes_what_is_queued_first() -> None:
    peer = Peer()
    conn = connection(peer, max_queue=8)
    assert conn.send("event") and conn.send('{"type":"error"}')
    conn.start()
    conn.close(4403, "removed from the room", flush=True)
    assert conn.send("after the close") is False
    await wait_until(lambda: peer.closes != [], what="the close sent")
    assert peer.sent == ["event", '{"type":"error"}']
    assert peer.closes == [(4403, "removed from the room")]
    await conn.stop()


async def test_a_peer_that_fails_mid_send_marks_the_socket_closed() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        if text == "boom":
            raise ConnectionResetError("peer went away")
        sent.append(text)

    async def close(code: int, reason: str) -> None:
        return None

    conn = Connection("c1", "u1", "alice", send, close, 8)
    conn.start()
    assert conn.send("ok") and conn.send("boom")
    await wait_until(lambda: conn.closed, what="the socket marked closed")
    assert sent == ["ok"] and conn.send("after") is False
    await conn.stop()


def _frames(message: str) -> list[object]:
    """A message as the client reads it: a batch is its frames, in order; any other is one frame."""
    import json

    msg = json.loads(message)
    return msg["frames"] if msg.get("type") == "batch" else [msg]


async def test_a_socket_that_announced_batch_gets_queued_frames_as_one_batch_in_order() -> None:
    peer = Peer()
    conn = connection(peer, max_queue=64)
    conn.batch = True
    conn.start()
    frames = [f'{{"type":"token.moving","x":{i}}}' for i in range(5)]
    for f in frames:  # queued in one go: the writer finds all five when it runs
        conn.send(f)
    await wait_until(lambda: conn.queue_depth == 0 and len(peer.sent) >= 1, what="the queue written")
    assert len(peer.sent) == 1
    assert _frames(peer.sent[0]) == [{"type": "token.moving", "x": i} for i in range(5)]
    conn.send('{"type":"pong"}')  # a lone frame goes as it is, not as a batch of one
    await wait_until(lambda: len(peer.sent) == 2, what="the lone frame written")
    assert peer.sent[1] == '{"type":"pong"}'
    await conn.stop()


async def test_a_socket_that_did_not_announce_batch_gets_single_frames() -> None:
    peer = Peer()
    conn = connection(peer, max_queue=64)
    conn.start()
    frames = [f'{{"type":"token.moving","x":{i}}}' for i in range(5)]
    for f in frames:
        conn.send(f)
    await wait_until(lambda: len(peer.sent) == 5, what="five frames written")
    assert peer.sent == frames
    await conn.stop()


async def test_a_batch_is_bounded_in_frames_and_size() -> None:
    from tableforge.realtime.connection import BATCH_MAX_CHARS, BATCH_MAX_FRAMES

    peer = Peer()
    conn = connection(peer, max_queue=512)
    conn.batch = True
    small = [f'{{"type":"e","v":{i}}}' for i in range(BATCH_MAX_FRAMES + 6)]
    big = '{"type":"big","pad":"' + "x" * (BATCH_MAX_CHARS // 2) + '"}'
    for f in [*small, big, big, big]:
        conn.send(f)
    batches = counter("tableforge_ws_batches_total")
    conn.start()
    await wait_until(lambda: conn.queue_depth == 0 and sum(len(_frames(m)) for m in peer.sent) == len(small) + 3,
                     what="every frame written")
    sizes = [len(_frames(m)) for m in peer.sent]
    # 64 small; the 6 left with one big (the next big would pass the size bound); one big; one big alone
    assert sizes == [BATCH_MAX_FRAMES, 7, 1, 1]
    assert all(len(m) <= BATCH_MAX_CHARS + 100 for m in peer.sent)
    assert [f for m in peer.sent for f in _frames(m)][:len(small)] == [{"type": "e", "v": i} for i in range(len(small))]
    assert counter("tableforge_ws_batches_total") - batches == 2
    await conn.stop()


class DirectPeer(Peer):
    """A server that also offers the synchronous write: it takes frames while `open` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []  # what went through the synchronous write
        self.open = True

    def write_now(self, text: str) -> bool:
        if not self.open:
            return False
        self.written.append(text)
        self.sent.append(text)
        return True


async def parked(conn: Connection) -> None:
    """Until the writer waits for work (what it does whenever nothing is queued or in flight)."""
    await wait_until(lambda: conn._wake is not None and not conn._wake.done(), what="the writer parked")


async def test_an_idle_socket_gets_its_frame_written_at_once_and_in_order() -> None:
    peer = DirectPeer()
    conn = connection(peer, max_queue=8)
    conn.write_now = peer.write_now
    conn.start()
    await parked(conn)
    assert conn.send("f0") and conn.send("f1")
    assert peer.written == ["f0", "f1"]  # no turn of the event loop needed
    assert conn.queue_depth == 0
    await conn.stop()


async def test_when_the_transport_pushes_back_the_queue_takes_over_in_order() -> None:
    peer = DirectPeer()
    conn = connection(peer, max_queue=8)
    conn.write_now = peer.write_now
    conn.start()
    await parked(conn)
    peer.open = False  # the transport is over its high-water mark
    peer.gate.clear()  # and the ASGI send waits for it
    assert conn.send("f0") and conn.send("f1") and conn.send("f2")
    assert peer.written == []
    peer.open = True
    assert conn.send("f3")  # the writer has f0 in flight: f3 must wait behind it, not overtake
    peer.gate.set()
    await wait_until(lambda: len(peer.sent) == 4, what="four frames written")
    assert peer.sent == ["f0", "f1", "f2", "f3"]
    await conn.stop()


async def test_a_batch_reader_gets_what_one_turn_of_the_loop_sent_as_one_batch() -> None:
    peer = DirectPeer()
    conn = connection(peer, max_queue=8)
    conn.write_now = peer.write_now
    conn.batch = True
    conn.start()
    await parked(conn)
    assert conn.send('{"n":1}') and conn.send('{"n":2}') and conn.send('{"n":3}')
    await wait_until(lambda: bool(peer.written), what="the turn's frames written")
    assert peer.written == ['{"type":"batch","frames":[{"n":1},{"n":2},{"n":3}]}']
    await parked(conn)
    assert conn.send('{"n":4}')
    await wait_until(lambda: len(peer.written) == 2, what="a lone frame written")
    assert peer.written[1] == '{"n":4}'  # alone in its turn: not wrapped
    await conn.stop()

"""The lean socket protocol's inbox and write gate keep the contracts of the asyncio.Queue and
asyncio.Event they replace in uvicorn's protocol: messages in order, a reader woken by a put, every
sender held while the transport is paused and released when it resumes."""

from __future__ import annotations

import asyncio

import pytest

from tableforge.wiring.ws_protocol import Gate, Inbox


async def test_the_inbox_hands_messages_over_in_order_and_wakes_a_waiting_reader() -> None:
    inbox = Inbox()
    inbox.put_nowait({"n": 1})
    inbox.put_nowait({"n": 2})
    assert inbox.qsize() == 2
    assert [await inbox.get(), await inbox.get()] == [{"n": 1}, {"n": 2}]
    assert inbox.empty()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)  # the reader is now waiting (no message yet)
    assert not reader.done()
    inbox.put_nowait({"n": 3})
    assert await asyncio.wait_for(reader, 5) == {"n": 3}


async def test_a_cancelled_reader_leaves_the_inbox_usable() -> None:
    inbox = Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    inbox.put_nowait("after")
    assert await asyncio.wait_for(inbox.get(), 5) == "after"


async def test_a_second_reader_at_once_is_refused() -> None:
    inbox = Inbox()
    first = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one task at a time"):
        await inbox.get()
    inbox.put_nowait("x")
    assert await asyncio.wait_for(first, 5) == "x"


async def test_the_gate_holds_every_sender_while_closed_and_releases_them_all() -> None:
    gate = Gate()
    assert gate.is_set() and await gate.wait()
    gate.clear()
    senders = [asyncio.ensure_future(gate.wait()) for _ in range(3)]
    cancelled = asyncio.ensure_future(gate.wait())
    await asyncio.sleep(0)
    assert not any(s.done() for s in senders)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(*senders), 5) == [True, True, True]



def test_the_synchronous_write_puts_on_the_wire_what_websockets_would() -> None:
    """A client (websockets' own protocol) reads each frame back as the text written, for the three
    length encodings and non-ASCII text."""
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.protocol import State
    from websockets.uri import parse_uri

    from tableforge.wiring.ws_protocol import LastFrame

    last = LastFrame()
    client = ClientProtocol(parse_uri("ws://127.0.0.1/"),
                            state=State.OPEN, max_size=None)
    for text in ("x", "é" * 70, "y" * 200, "z" * 70_000, "y" * 200):
        wire = last.of(text)
        assert wire == Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
        client.receive_data(wire)
        [event] = client.events_received()
        assert event.opcode is Opcode.TEXT and event.data.decode() == text

"""EdgePurger against a small real HTTP server on loopback: batching, failures, bounds, repeat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tableforge.cache import Cache
from tableforge.cache.purge import EdgePurger
from tests.conftest import free_port
from tests.support.waiting import wait_until


class FakeEdge:
    """Answers every request with `status` after `delay` seconds; records (method, xkey)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.status = 200
        self.delay = 0.0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            method = head.split(" ", 1)[0]
            headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
            self.requests.append((method, headers.get("xkey", "")))
            await asyncio.sleep(self.delay)  # the scenario: an edge that is slow to answer
            writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()

    async def __aenter__(self) -> FakeEdge:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def edge() -> AsyncIterator[FakeEdge]:
    async with FakeEdge() as fake:
        yield fake


async def test_concurrent_purges_are_batched_into_one_request(edge: FakeEdge) -> None:
    edge.delay = 0.2
    purger = EdgePurger([edge.url], wait=5.0)
    first = asyncio.ensure_future(purger.purge("catalog"))
    await wait_until(lambda: len(edge.requests) == 1)  # the first request is in flight; the next three share one batch
    rest = await asyncio.gather(purger.purge("system-1"), purger.purge("catalog", "system-2"),
                                purger.purge("system-1"))
    assert await first and all(rest)
    assert edge.requests[0] == ("PURGE", "catalog")
    assert edge.requests[1:] == [("PURGE", "system-1 catalog system-2")]
    assert purger.stats()["requests_ok"] == 2 and purger.stats()["keys_purged"] == 4
    await purger.close()


async def test_ban_method_and_several_edges(edge: FakeEdge) -> None:
    async with FakeEdge() as other:
        purger = EdgePurger([edge.url, other.url], method="BAN")
        assert await purger.purge("catalog")
        assert edge.requests == other.requests == [("BAN", "catalog")]
        await purger.close()


async def test_failures_are_counted_never_raised(edge: FakeEdge) -> None:
    edge.status = 500
    purger = EdgePurger([edge.url, f"http://127.0.0.1:{free_port()}/"], timeout=1.0)
    assert await purger.purge("catalog") is False
    stats = purger.stats()
    assert stats["requests_failed"] == 2 and stats["requests_ok"] == 0 and stats["last_error"]
    await purger.close()


async def test_a_slow_edge_never_holds_the_caller_longer_than_wait(edge: FakeEdge) -> None:
    edge.delay = 1.0
    purger = EdgePurger([edge.url], wait=0.1, timeout=5.0)
    assert await purger.purge("catalog") is False
    assert purger.stats()["requests_ok"] == 0, "returned while the slow edge had not answered yet"
    purger.purge_nowait("system-1")  # no wait at all
    await wait_until(lambda: len(edge.requests) == 2 and purger.stats()["requests_ok"] == 2)
    assert [k for _, k in edge.requests] == ["catalog", "system-1"]  # still delivered, in the background
    await purger.close()


async def test_the_queue_is_bounded(edge: FakeEdge) -> None:
    edge.delay = 0.3
    purger = EdgePurger([edge.url], max_pending=2, wait=0)
    purger.purge_nowait("a")
    await wait_until(lambda: len(edge.requests) == 1)  # "a" is in flight; the queue holds at most two more keys
    purger.purge_nowait("b", "c", "d", "e")
    purger.purge_nowait("b")  # already queued: not a drop
    assert purger.stats()["keys_dropped"] == 2
    await wait_until(lambda: len(edge.requests) == 2)
    await purger.close()  # sends whatever is still queued: a key that was not dropped would show
    assert [k for _, k in edge.requests] == ["a", "b c"]


async def test_repeat_purges_each_key_a_second_time(edge: FakeEdge) -> None:
    purger = EdgePurger([edge.url], repeat=0.1)
    assert await purger.purge("catalog")
    await wait_until(lambda: purger.stats()["requests_ok"] == 2, what="the repeat")
    # A third "catalog" would be due `repeat` after the second; a key purged only now repeats later
    # than that, so once its repeat is in, any third "catalog" would have come before it.
    assert await purger.purge("other")
    await wait_until(lambda: purger.stats()["requests_ok"] == 4, what="the other key's repeat")
    assert [k for _, k in edge.requests] == ["catalog", "catalog", "other", "other"]  # twice, not forever
    await purger.close()


async def test_cache_purge_edge_and_close_drains(edge: FakeEdge) -> None:
    assert await EdgePurger([]).purge("catalog") is False  # no edge configured: a no-op
    cache = Cache(edge=EdgePurger([edge.url], wait=0))
    await cache.purge_edge("catalog")
    await cache.close()  # sends what is queued before it stops
    assert edge.requests == [("PURGE", "catalog")]
    assert cache.stats()["edge"]["requests_ok"] == 1
    await Cache().purge_edge("catalog")  # no edge: nothing happens

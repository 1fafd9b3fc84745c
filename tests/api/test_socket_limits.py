"""Sockets per user (20) and per client address (200): beyond, an error frame `too_many_connections`
and close 4429. The count is exact under a burst and goes down on every way a socket ends."""

from __future__ import annotations

import asyncio
import json
import random

import websockets

from tests.support.client import Api, Player, Ws
from tests.support.metrics import sample
from tests.support.waiting import eventually

PER_USER, PER_ADDRESS = 20, 200


def new_address() -> dict[str, str]:
    return {"X-Forwarded-For": f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"}


async def connect(api: Api, who: Player, address: dict[str, str]) -> Ws:
    return Ws(await websockets.connect(api.ws_url, additional_headers={**who.headers, **address}, max_size=None))


async def admitted(ws: Ws) -> bool:
    """Open and answering (a refused socket has its error frame and close 4429 on the way)."""
    try:
        return (await ws.request("ping"))["type"] == "pong"
    except (websockets.ConnectionClosed, TimeoutError):
        return False


async def refused(ws: Ws) -> None:
    """The refusal a client sees: the error frame, then close code 4429."""
    frame = await ws.next_event("error", seconds=10)
    assert frame["code"] == "too_many_connections"
    assert await ws.closed_with() == 4429


async def burst(api: Api, players: list[Player], each: int, address: dict[str, str]) -> tuple[list[Ws], list[Ws]]:
    """Open `each` sockets per player all at once; (still open, closed by the server)."""
    socks = await asyncio.gather(*(connect(api, p, address) for p in players for _ in range(each)))
    expected_open = min(PER_USER * len(players), PER_ADDRESS)

    async def settled() -> bool:  # every refusal has arrived (more would keep this from holding)
        return sum(s.sock.close_code is not None for s in socks) >= len(socks) - expected_open

    await eventually(settled, within=20, what="the refusals")
    closed = [s for s in socks if s.sock.close_code is not None]
    still = [s for s in socks if s.sock.close_code is None]
    return still, closed


async def test_a_burst_of_sockets_from_one_user_is_capped_exactly(api: Api) -> None:
    bob = await api.register("bob")
    address = new_address()
    before = await sample(api.http, "tableforge_ws_refused_total", reason="per_user")
    still, closed = await burst(api, [bob], 120, address)
    assert len(still) == PER_USER and len(closed) == 120 - PER_USER
    for ws in closed:
        await refused(ws)
    assert all(await asyncio.gather(*(admitted(ws) for ws in still)))
    assert await sample(api.http, "tableforge_ws_refused_total", reason="per_user") - before == 120 - PER_USER

    # Full: one more is refused; each way a socket can end frees its place, and only one place.
    await refused(await connect(api, bob, address))
    await still.pop().close()  # 1. the client closes
    fresh = await eventually_admitted(api, bob, address)
    await refused(await connect(api, bob, address))
    dropped = still.pop()  # 2. the connection drops without a close frame
    dropped.sock.transport.abort()
    await eventually_admitted(api, bob, address)
    await refused(await connect(api, bob, address))
    too_big = still.pop()  # 3. the server closes it (a frame over the size limit: 1009)
    await too_big.send_raw(json.dumps({"type": "chat.send", "room_id": "x", "text": "a" * 70_000}))
    assert await too_big.closed_with() == 1009
    await eventually_admitted(api, bob, address)
    await refused(await connect(api, bob, address))
    for ws in [*still, fresh]:
        await ws.close()


async def eventually_admitted(api: Api, who: Player, address: dict[str, str]) -> Ws:
    """A new socket is admitted once the server has counted the freed one (refused until then)."""
    found: list[Ws] = []

    async def try_once() -> bool:
        ws = await connect(api, who, address)
        if await admitted(ws):
            found.append(ws)
            return True
        return False

    await eventually(try_once, within=30, what="a free place")
    return found[0]


async def test_sockets_from_one_address_are_capped(api: Api) -> None:
    players = [await api.register("p") for _ in range(PER_ADDRESS // PER_USER + 1)]
    address = new_address()
    before = await sample(api.http, "tableforge_ws_refused_total", reason="per_address")
    still, closed = await burst(api, players, PER_USER, address)
    assert len(still) == PER_ADDRESS and len(closed) == PER_USER
    for ws in closed:
        await refused(ws)
    assert await sample(api.http, "tableforge_ws_refused_total", reason="per_address") - before == PER_USER
    # Anyone else from that address is refused; from another address they are welcome.
    newcomer = await api.register("n")
    await refused(await connect(api, newcomer, address))
    other = await connect(api, newcomer, new_address())
    assert await admitted(other)
    await asyncio.gather(*(ws.close() for ws in [*still, other]))

"""A table under load while something fails, as its players see it.

Players on several instances each commit `token.move`s at a steady rate; every socket follows the
protocol like the web client does: it keeps what it received, and on `room.resync` it rejoins with
`since`. It never polls, so an instance that stops delivering cannot hide behind the client.
Recorded per socket: every version it has and when it got it, acks (and when), close codes.
`Table.complete(upto)` answers "has every socket on every instance got every version up to
`upto`?"; the fault tests wait for it, and `bench/bench_faults.py` reports how long after the fault
that took. Shared by both so they measure the same thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import websockets

from tests.support.client import Api


@dataclass
class Seat:
    """One socket of one player."""

    name: str
    url: str
    token: str
    room_id: str
    token_id: str = ""
    sock: Any = None
    base: int = 0  # the version its first join covered
    have: set[int] = field(default_factory=set)
    got_at: dict[int, float] = field(default_factory=dict)  # version -> monotonic time it arrived
    acked: dict[int, float] = field(default_factory=dict)  # version of our own acked move -> x
    acked_at: dict[int, float] = field(default_factory=dict)  # version -> monotonic time of the ack
    refused: dict[str, int] = field(default_factory=dict)  # error code -> count
    resyncs: int = 0
    snapshots: int = 0
    close_code: int | None = None
    replies: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    reader: asyncio.Task[None] | None = None
    rejoining: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.sock = await websockets.connect(self.url, additional_headers={"Authorization": f"Bearer {self.token}"},
                                             max_size=None)
        self.reader = asyncio.ensure_future(self._read())
        ack = await self.request("join", room_id=self.room_id)
        assert ack["type"] == "ack", ack
        self.base = int(ack["version"])

    async def request(self, mtype: str, **fields: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[msg_id] = fut
        await self.sock.send(orjson.dumps({"type": mtype, "id": msg_id, **fields}).decode())
        async with asyncio.timeout(15):
            return await fut

    def _got(self, version: int) -> None:
        if version not in self.have:
            self.have.add(version)
            self.got_at[version] = time.monotonic()

    async def _read(self) -> None:
        try:
            async for raw in self.sock:
                msg = orjson.loads(raw)
                mtype = msg.get("type")
                if mtype in ("ack", "error", "pong") and msg.get("id") in self.replies:
                    fut = self.replies.pop(msg["id"])
                    if not fut.done():
                        fut.set_result(msg)
                elif mtype == "room.resync":
                    self.rejoin()
                elif isinstance(msg.get("version"), int) and msg.get("room_id") == self.room_id:
                    self._got(msg["version"])
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.sock.close_code

    def rejoin(self) -> None:
        if self.rejoining is None or self.rejoining.done():
            self.rejoining = asyncio.ensure_future(self._rejoin())

    def contiguous(self) -> int:
        version = self.base
        while version + 1 in self.have:
            version += 1
        return version

    async def _rejoin(self) -> None:
        """What the web client does on `room.resync` or a gap: join with `since`."""
        self.resyncs += 1
        for _ in range(10):
            since = self.contiguous()
            try:
                ack = await self.request("join", room_id=self.room_id, since=since)
            except (TimeoutError, websockets.ConnectionClosed):
                return
            if ack.get("type") != "ack":
                await asyncio.sleep(0.2)  # e.g. db_unavailable while PostgreSQL restarts: try again
                continue
            for event in ack.get("events", ()):
                self._got(int(event["version"]))
            if "snapshot" in ack:
                self.snapshots += 1
                for version in range(since + 1, int(ack["version"]) + 1):
                    self._got(version)  # the snapshot covers them
            return

    def missing(self, upto: int) -> list[int]:
        return [v for v in range(self.base + 1, upto + 1) if v not in self.have]

    async def close(self) -> None:
        """Bounded whatever state the server is in (stopped, restarting): a test never hangs here."""
        if self.rejoining is not None:
            self.rejoining.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                await self.sock.close()
        with contextlib.suppress(Exception):
            self.sock.transport.abort()
        if self.reader is not None:
            self.reader.cancel()


class Table:
    """`per_instance` players on each instance URL, one room, one token each."""

    def __init__(self, http_url: str, instance_urls: list[str], per_instance: int = 3, rate: float = 20.0) -> None:
        self.http_url = http_url
        self.instance_urls = instance_urls
        self.per_instance = per_instance
        self.rate = rate
        self.seats: list[Seat] = []
        self.room_id = ""
        self.stop = asyncio.Event()
        self.writers: list[asyncio.Task[None]] = []

    async def setup(self) -> None:
        async with Api(self.http_url) as api:
            gm = await api.register("gm")
            players = [await api.register("p") for _ in range(len(self.instance_urls) * self.per_instance - 1)]
            room = await api.room(gm, *players)
            self.room_id = room["id"]
            asset = await api.asset(gm, self.room_id)
        everyone = [gm, *players]
        for i, who in enumerate(everyone):
            url = self.instance_urls[i % len(self.instance_urls)].replace("http://", "ws://") + "/ws"
            self.seats.append(Seat(f"seat{i}", url, who.token, self.room_id))
        for seat in self.seats:
            await seat.connect()
            ack = await seat.request("token.add", room_id=self.room_id, asset_id=asset["id"], x=0, y=0)
            assert ack["type"] == "ack", ack
            seat.token_id = ack["token"]["id"]
            seat._got(int(ack["version"]))

    def start(self) -> None:
        self.writers = [asyncio.ensure_future(self._write(seat)) for seat in self.seats]

    async def _write(self, seat: Seat) -> None:
        period = 1.0 / self.rate
        n = 0
        next_at = time.monotonic()
        while not self.stop.is_set() and seat.close_code is None:
            n += 1
            try:
                reply = await seat.request("token.move", room_id=self.room_id, token_id=seat.token_id, x=n, y=n)
            except (TimeoutError, websockets.ConnectionClosed):
                reply = {"type": "error", "code": "no_reply"}
            if reply.get("type") == "ack":
                seat.acked[int(reply["version"])] = float(n)
                seat.acked_at[int(reply["version"])] = time.monotonic()
                seat._got(int(reply["version"]))
            else:
                code = str(reply.get("code"))
                seat.refused[code] = seat.refused.get(code, 0) + 1
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))  # the scenario: the player's pace

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.writers, return_exceptions=True)

    def latest_acked(self) -> int:
        return max((v for seat in self.seats for v in seat.acked), default=0)

    def complete(self, upto: int) -> bool:
        """Every socket has every version up to `upto`, pushed by the server (live, or the rejoin a
        `room.resync` asked for): the client never polls, so a silent instance cannot hide."""
        return all(not seat.missing(upto) for seat in self.seats)

    def missing(self, upto: int) -> dict[str, list[int]]:
        return {seat.name: seat.missing(upto)[:10] for seat in self.seats if seat.missing(upto)}

    async def close(self) -> None:
        self.stop.set()
        for writer in self.writers:
            writer.cancel()
        await asyncio.gather(*self.writers, return_exceptions=True)
        await asyncio.gather(*(seat.close() for seat in self.seats), return_exceptions=True)

"""Batch frames as a client sees them: a socket that announced `batch` in join may get several
frames in one message; one that did not never does. Shared by the embedded and scale-out tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from tests.support.client import Api

BURST = 40  # preview moves sent back to back: enough to queue up behind one write
MAX_BURSTS = 30


class Reader:
    """A raw socket: every message as received, and the frames it carries, in order."""

    def __init__(self, sock: websockets.ClientConnection) -> None:
        self.sock = sock
        self.messages: list[dict[str, Any]] = []
        self.frames: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.task: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, url: str, token: str, room_id: str, batch: bool) -> Reader:
        sock = await websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None)
        reader = cls(sock)
        join: dict[str, Any] = {"type": "join", "room_id": room_id, "id": "join"}
        if batch:
            join["batch"] = True
        await sock.send(json.dumps(join))
        reader.task = asyncio.ensure_future(reader.run())
        await reader.until(lambda f: f.get("id") == "join")
        return reader

    async def run(self) -> None:
        try:
            async for raw in self.sock:
                msg = json.loads(raw)
                self.messages.append(msg)
                self.frames.extend(msg["frames"] if msg.get("type") == "batch" else [msg])
                self.arrived.set()
        except websockets.ConnectionClosed:
            pass

    async def until(self, found: Any, seconds: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(seconds):
            while True:
                for f in self.frames:
                    if found(f):
                        return f
                self.arrived.clear()
                await self.arrived.wait()

    @property
    def batches(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == "batch"]


async def check_batching(api: Api, sender_url: str, batch_url: str, single_url: str) -> None:
    """The GM drags (bursts of previews) and commits; a batch reader and a single-frame reader (on
    the given instances) see the same frames in the same order; only the first ever gets a batch."""
    gm, alice, bob = await api.register("gm"), await api.register("al"), await api.register("bo")
    room = await api.room(gm, alice, bob)
    asset = await api.asset(gm, room["id"])
    sender = await Reader.open(sender_url, gm.token, room["id"], batch=False)
    batching = await Reader.open(batch_url, alice.token, room["id"], batch=True)
    single = await Reader.open(single_url, bob.token, room["id"], batch=False)
    try:
        await sender.sock.send(json.dumps({"type": "token.add", "id": "add", "room_id": room["id"],
                                           "asset_id": asset["id"], "x": 0, "y": 0}))
        token_id = (await sender.until(lambda f: f.get("id") == "add"))["token"]["id"]
        for reader in (batching, single):
            await reader.until(lambda f: f.get("type") == "token.added")
        start = {id(r): len(r.frames) for r in (batching, single)}
        sent: list[float] = []
        for burst in range(MAX_BURSTS):
            xs = [burst * 1000.0 + i for i in range(BURST)]
            for x in xs:
                await sender.sock.send(json.dumps({"type": "token.move", "room_id": room["id"], "token_id": token_id,
                                                   "x": x, "y": 1, "preview": True}))
            sent += xs
            end = burst * 1000.0 + 999
            await sender.sock.send(json.dumps({"type": "token.move", "id": f"commit{burst}", "room_id": room["id"],
                                               "token_id": token_id, "x": end, "y": 1}))
            sent.append(end)
            for reader in (batching, single):
                await reader.until(lambda f, end=end: f.get("type") == "token.moved" and f.get("x") == end)
            if batching.batches:
                break
        assert batching.batches, f"no batch in {MAX_BURSTS} bursts of {BURST} previews"
        assert not single.batches, "a socket that did not announce batch got one"
        moves = {id(r): [f["x"] for f in r.frames[start[id(r)]:] if f.get("type") in ("token.moving", "token.moved")]
                 for r in (batching, single)}
        # every preview and commit, in the order sent (none was dropped: the queues stayed short)
        assert moves[id(batching)] == sent
        assert moves[id(single)] == sent
        assert all(1 < len(b["frames"]) <= 64 for b in batching.batches)
    finally:
        for reader in (sender, batching, single):
            await reader.sock.close()

"""Small clients that speak PROTOCOL.md: `Api` over HTTP and `Ws` over the socket."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import uuid
from typing import Any

import httpx
import websockets
from PIL import Image


def png_bytes(width: int = 32, height: int = 16, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


class Player:
    def __init__(self, user: dict[str, Any], token: str) -> None:
        self.user = user
        self.token = token
        self.id = user["id"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws"

    async def register(self, prefix: str = "user") -> Player:
        name = f"{prefix}{uuid.uuid4().hex[:10]}"
        r = await self.http.post("/api/auth/register", json={"username": name, "password": "correct horse"})
        assert r.status_code == 201, r.text
        self.http.cookies.clear()  # each Player authenticates with its own bearer token
        body = r.json()
        return Player(body["user"], body["token"])

    async def room(self, gm: Player, *players: Player, system_id: str | None = None) -> dict[str, Any]:
        r = await self.http.post("/api/rooms", json={"name": "Table", "game_system_id": system_id}, headers=gm.headers)
        assert r.status_code == 201, r.text
        room = r.json()
        for p in players:
            j = await self.http.post("/api/rooms/join", json={"invite_code": room["invite_code"]}, headers=p.headers)
            assert j.status_code == 200, j.text
        return room

    async def upload(self, who: Player, room_id: str, data: bytes | None = None, filename: str = "map.png"
                     ) -> httpx.Response:
        return await self.http.post(f"/api/rooms/{room_id}/assets", headers=who.headers,
                                    files={"file": (filename, data if data is not None else png_bytes(), "image/png")})

    async def asset(self, who: Player, room_id: str) -> dict[str, Any]:
        r = await self.upload(who, room_id)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def snapshot(self, who: Player, room_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/api/rooms/{room_id}", headers=who.headers)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def ws(self, who: Player) -> Ws:
        return await Ws.connect(self.ws_url, who.token)

    async def table(self) -> tuple[Player, Player, dict[str, Any], Ws, Ws]:
        """A GM and Alice in a new room, both joined over a socket each (the GM has seen Alice join):
        (gm, alice, room, the GM's socket, Alice's socket)."""
        gm, alice = await self.register("gm"), await self.register("al")
        room = await self.room(gm, alice)
        a, b = await self.ws(gm), await self.ws(alice)
        await a.request("join", room_id=room["id"])
        await b.request("join", room_id=room["id"])
        await a.next_event("player.joined")
        return gm, alice, room, a, b


class Ws:
    """A socket that files acks by id and keeps events in arrival order."""

    def __init__(self, sock: websockets.ClientConnection) -> None:
        self.sock = sock
        self.ids = itertools.count(1)
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.replies: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self.raw: list[str] = []  # every frame received, as text (to scan for what must never arrive)
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url: str, token: str | None, **kwargs: Any) -> Ws:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        sock = await websockets.connect(url, additional_headers=headers, max_size=None, **kwargs)
        return cls(sock)

    async def _read(self) -> None:
        try:
            async for raw in self.sock:
                self.raw.append(raw if isinstance(raw, str) else raw.decode())
                msg = json.loads(raw)
                fut = self.replies.pop(msg.get("id"), None) if msg.get("type") in ("ack", "error", "pong") else None
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                else:
                    await self.events.put(msg)
        except websockets.ConnectionClosed:
            pass

    async def request(self, mtype: str, **fields: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[msg_id] = fut
        await self.sock.send(json.dumps({"type": mtype, "id": msg_id, **fields}))
        return await asyncio.wait_for(fut, 10)

    async def send(self, mtype: str, **fields: Any) -> None:
        await self.sock.send(json.dumps({"type": mtype, **fields}))

    async def send_raw(self, data: str | bytes) -> None:
        await self.sock.send(data)

    async def next_event(self, etype: str | None = None, seconds: float = 10) -> dict[str, Any]:
        """The next event (of `etype`, skipping others)."""
        async with asyncio.timeout(seconds):
            while True:
                msg = await self.events.get()
                if etype is None or msg.get("type") == etype:
                    return msg

    def drain(self) -> list[dict[str, Any]]:
        """The events received so far and not yet read (without waiting: to show that an event did
        NOT come, make a later change and check it is the next one; see tests/api/test_play.py)."""
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    async def closed_with(self, seconds: float = 10) -> int | None:
        try:
            await asyncio.wait_for(self.sock.wait_closed(), seconds)
        except TimeoutError:
            return None
        return self.sock.close_code

    async def close(self, code: int = 1000) -> None:
        await self.sock.close(code)
        self.reader.cancel()

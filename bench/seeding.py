"""Set-up shared by the WebSocket benchmarks (`bench_ws_cpu.py`, `bench_ws_actions.py`): wait for an
instance, and fill it with rooms of players, each player with a token on the room's map."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from websockets.asyncio.client import connect

from tableforge.loadtest.model import tiny_png

PASSWORD = "bench-password-123"


async def wait_ready(http: aiohttp.ClientSession, port: int) -> None:
    for _ in range(600):
        try:
            async with http.get(f"http://127.0.0.1:{port}/ready") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"the instance on {port} did not start")


async def seed_players(port: int, rooms: int, members: int, prefix: str) -> list[dict[str, str]]:
    """`rooms` rooms of `members` players (the first one the GM) on the instance at `port`, each player
    with a token on the room's map: a dict per player with its session `token`, `room`, `asset` and
    `token_id`. Eight requests at a time."""
    base = f"http://127.0.0.1:{port}"
    sem = asyncio.Semaphore(8)
    async with aiohttp.ClientSession() as http:
        await wait_ready(http, port)

        async def call(method: str, path: str, token: str | None = None, **kw: Any) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with sem, http.request(method, base + path, headers=headers, **kw) as r:
                if r.status >= 300:
                    raise SystemExit(f"{method} {path}: {r.status} {await r.text()}")
                return await r.json()

        async def player(i: int) -> dict[str, str]:
            body = await call("POST", "/api/auth/register", json={"username": f"{prefix}{i}", "password": PASSWORD})
            return {"token": body["token"]}

        players = await asyncio.gather(*(player(i) for i in range(rooms * members)))
        for r in range(rooms):
            gm = players[r * members]
            room = await call("POST", "/api/rooms", gm["token"], json={"name": f"{prefix} room {r}"})
            form = aiohttp.FormData()
            form.add_field("file", tiny_png(r), filename="map.png", content_type="image/png")
            asset = await call("POST", f"/api/rooms/{room['id']}/assets", gm["token"], data=form)
            for m in range(members):
                p = players[r * members + m]
                p["room"], p["asset"] = room["id"], asset["id"]
                if m:
                    await call("POST", "/api/rooms/join", p["token"], json={"invite_code": room["invite_code"]})

        async def token(p: dict[str, str]) -> None:
            async with sem, connect(f"ws://127.0.0.1:{port}/ws", additional_headers={
                    "Authorization": f"Bearer {p['token']}"}, compression=None) as ws:
                await ws.send(orjson.dumps({"type": "join", "room_id": p["room"], "id": 1}).decode())
                await ws.send(orjson.dumps({"type": "token.add", "room_id": p["room"], "asset_id": p["asset"],
                                            "x": 0.0, "y": 0.0, "id": 2}).decode())
                async for raw in ws:
                    msg = orjson.loads(raw)
                    if msg.get("id") == 2:
                        p["token_id"] = msg["token"]["id"]
                        return

        await asyncio.gather(*(token(p) for p in players))
        return players

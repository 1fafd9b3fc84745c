"""uvicorn's WebSocket implementations compared on what TableForge pays per socket and per frame.

For each implementation: a fresh embedded server (uvicorn, `ws=IMPL`); memory with N idle sockets
open (RSS growth per socket), then server CPU per delivered frame: 50 sockets in one room, 2,000
pointer frames fanned out to the 49 others (ephemeral: no database on the path).

    .venv/bin/python bench/bench_ws_impl.py [--sockets 1000] [IMPL ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import psutil
import websockets

IMPLS = ("websockets", "websockets-sansio", "wsproto")
MEMBERS, SENDS = 50, 2000


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(impl: str, port: int, data_dir: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TABLEFORGE_DATA_DIR": data_dir, "TABLEFORGE_LOG_LEVEL": "WARNING",
           "TABLEFORGE_WS_RATE_PER_SECOND": "100000", "TABLEFORGE_WS_MAX_PER_ADDRESS": "1000000",
           "TABLEFORGE_WS_RATE_BURST": "100000",
           "TABLEFORGE_WS_SEND_QUEUE": "100000"}
    code = ("import uvicorn; uvicorn.run('tableforge.api.app:create_app', factory=True, "
            f"port={port}, ws={impl!r}, log_level='warning', ws_max_size=65536)")
    return subprocess.Popen([sys.executable, "-c", code], env=env)


async def _register(http: httpx.AsyncClient, name: str) -> str:
    r = await http.post("/api/auth/register", json={"username": name, "password": "bench-password"})
    return str(r.json()["token"])


async def measure(impl: str, sockets: int) -> dict[str, float]:
    port = _port()
    with tempfile.TemporaryDirectory() as data_dir:
        proc = _start(impl, port, data_dir)
        server = psutil.Process(proc.pid)
        url = f"ws://127.0.0.1:{port}/ws?token="
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                for _ in range(200):
                    try:
                        await http.get("/health")
                        break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.1)
                tokens = [await _register(http, f"u{i}x{port}") for i in range(MEMBERS)]
                gm = {"Authorization": f"Bearer {tokens[0]}"}
                room = (await http.post("/api/rooms", json={"name": "bench"}, headers=gm)).json()
                for token in tokens[1:]:
                    await http.post("/api/rooms/join", json={"invite_code": room["invite_code"]},
                                    headers={"Authorization": f"Bearer {token}"})

            base = server.memory_info().rss
            idle = [await websockets.connect(url + tokens[0]) for _ in range(sockets)]
            await asyncio.sleep(2)
            per_socket_kb = (server.memory_info().rss - base) / sockets / 1024
            for s in idle:
                await s.close()

            socks = [await websockets.connect(url + t, max_queue=None) for t in tokens]
            for s in socks:
                await s.send(json.dumps({"type": "join", "room_id": room["id"], "id": 1}))
                while json.loads(await s.recv()).get("type") != "ack":
                    pass
            await asyncio.sleep(1)
            for s in socks[1:]:  # drop the player.joined events
                while True:
                    try:
                        await asyncio.wait_for(s.recv(), 0.05)
                    except TimeoutError:
                        break

            async def drain(s: websockets.ClientConnection) -> None:
                for _ in range(SENDS):
                    await s.recv()

            cpu0, t0 = sum(server.cpu_times()[:2]), time.perf_counter()
            readers = [asyncio.create_task(drain(s)) for s in socks[1:]]
            for i in range(SENDS):
                await socks[0].send(json.dumps({"type": "pointer", "room_id": room["id"], "x": i, "y": 1}))
            await asyncio.wait_for(asyncio.gather(*readers), 120)
            cpu, wall = sum(server.cpu_times()[:2]) - cpu0, time.perf_counter() - t0
            for s in socks:
                await s.close()
        finally:
            proc.terminate()
            proc.wait(10)
    deliveries = SENDS * (MEMBERS - 1)
    return {"per_socket_kb": round(per_socket_kb, 1), "idle_rss_mb": round(base / 2**20),
            "cpu_us_per_delivery": round(cpu / deliveries * 1e6, 1), "deliveries_per_s": round(deliveries / wall)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("impls", nargs="*", metavar="IMPL", help=f"any of {', '.join(IMPLS)} (default: all)")
    parser.add_argument("--sockets", type=int, default=1000)
    args = parser.parse_args()
    for impl in args.impls or IMPLS:
        print(impl, asyncio.run(measure(impl, args.sockets)), flush=True)


if __name__ == "__main__":
    main()

"""Comparison server for bench/bench_scaleout.py: the minimal python-socketio app a Python developer would write.

Run: .venv/bin/python bench/socketio_peer.py --port 9001 --redis redis://127.0.0.1:6379/0 --channel sio-bench-x

One ASGI app (python-socketio AsyncServer + AsyncRedisManager, served by uvicorn), K of them on the same
Redis channel make one cluster. Protocol (socket.io, namespace "/"):
- `join` {room}: enter the room; ack `{"ok": true}`.
- `move` {p, x, y}: a "committed" move. Stored nowhere; emitted to the room as `moved` (skip_sid=sender)
  through the Redis manager (local delivery first, then PUBLISH on the one shared channel); ack `1`.
- `preview` {p, x, y}: the same, emitted as `moving`, no ack.
`GET /health` answers 200 `ok` so the bench can wait for it. Needs the `bench` extra (python-socketio>=5).
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
import uvicorn


def build_app(redis_url: str, channel: str) -> Any:
    manager = socketio.AsyncRedisManager(redis_url, channel=channel)
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager, cors_allowed_origins=[],
                               ping_interval=25, ping_timeout=60, max_http_buffer_size=65536)
    rooms: dict[str, str] = {}  # sid -> room (one room per socket in this benchmark)

    @sio.on("join")
    async def join(sid: str, data: dict[str, Any]) -> dict[str, bool]:
        room = str(data["room"])
        rooms[sid] = room
        await sio.enter_room(sid, room)
        return {"ok": True}

    @sio.on("move")
    async def move(sid: str, data: dict[str, Any]) -> int:
        room = rooms.get(sid)
        if room is not None:
            await sio.emit("moved", data, room=room, skip_sid=sid)
        return 1

    @sio.on("preview")
    async def preview(sid: str, data: dict[str, Any]) -> None:
        room = rooms.get(sid)
        if room is not None:
            await sio.emit("moving", data, room=room, skip_sid=sid)

    @sio.on("disconnect")
    async def disconnect(sid: str, *args: Any) -> None:
        rooms.pop(sid, None)

    async def health(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return socketio.ASGIApp(sio, other_asgi_app=health)


def main() -> None:
    parser = argparse.ArgumentParser(description="python-socketio + AsyncRedisManager comparison server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--channel", default="socketio-bench")
    args = parser.parse_args()
    # the same server stack and settings style as `tableforge serve` (uvicorn defaults: uvloop, websockets)
    uvicorn.run(build_app(args.redis, args.channel), host=args.host, port=args.port, log_level="warning",
                access_log=False, ws_max_size=65536, ws_ping_interval=None, lifespan="on")


if __name__ == "__main__":
    main()

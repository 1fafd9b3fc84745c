"""A reader too slow to keep up is closed (1013); the server's memory does not grow for it, and the
client, once it reads again, finds the 1013 close frame after the frames queued before it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.support.client import Api
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def small_queue_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # No presence grace: the room sees the slow reader's drop as `player.left` at once (a 1013 close
    # otherwise keeps the user online for the grace, as the client is told to come back).
    env = {"TABLEFORGE_DATA_DIR": str(tmp_path_factory.mktemp("slow")), "TABLEFORGE_WS_SEND_QUEUE": "16",
           "TABLEFORGE_WS_RATE_PER_SECOND": "2000", "TABLEFORGE_WS_RATE_BURST": "2000",
           "TABLEFORGE_PRESENCE_GRACE_SECONDS": "0"}
    srv = ServerProcess(free_port(), env, name="small-queue")
    srv.start()
    yield srv
    srv.stop()


def _stalled_socket(port: int, token: str, room_id: str) -> socket.socket:
    """A WebSocket client that joins a room and then never reads (tiny receive window)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head
    payload = json.dumps({"type": "join", "room_id": room_id, "id": 1}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return sock


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of the complete frames in `data` (server frames are not masked)."""
    frames, i = [], 0
    while i + 2 <= len(data):
        opcode, length, j = data[i] & 0x0F, data[i + 1] & 0x7F, i + 2
        if length == 126:
            (length,), j = struct.unpack(">H", data[j:j + 2]), j + 2
        elif length == 127:
            (length,), j = struct.unpack(">Q", data[j:j + 8]), j + 8
        if j + length > len(data):
            break
        frames.append((opcode, data[j:j + length]))
        i = j + length
    return frames


def _read_until_close(sock: socket.socket) -> list[tuple[int, bytes]]:
    """Read what the server sent until its close frame, or until it ends the stream without one."""
    sock.settimeout(30)  # a bound, not a pace: the server ends the stream by itself
    data = b""
    while chunk := sock.recv(1 << 20):
        data += chunk
        if b"\x88" in data and (frames := _frames(data)) and frames[-1][0] == 0x8:
            return frames
    return _frames(data)


async def test_slow_reader_is_closed_and_others_keep_playing(small_queue_server: ServerProcess, tmp_path: Path) -> None:
    async with Api(small_queue_server.base_url) as api:
        gm, slow = await api.register("gm"), await api.register("slow")
        room = await api.room(gm, slow)
        a = await api.ws(gm)
        await a.request("join", room_id=room["id"])
        stalled = _stalled_socket(small_queue_server.port, slow.token, room["id"])
        await a.next_event("player.joined")
        text = "x" * 1900
        closed = None
        for i in range(3000):
            # Acked one by one: the server's own pace, so the stalled socket's queue fills for real.
            await a.request("chat.send", room_id=room["id"], text=f"{i} {text}")
            left = [e for e in a.drain() if e.get("type") == "player.left"]
            if left:
                closed = left[0]
                break
        assert closed is not None and closed["user"]["id"] == slow.id, "the stalled reader was dropped"
        pong = await a.request("ping")
        assert pong["type"] == "pong", "the room plays on"
        metrics = (await api.http.get("/metrics")).text
        assert 'tableforge_ws_closed_total{reason="slow_consumer"} 1.0' in metrics
        # The stalled client reads again: the frames queued before the close, then the close frame.
        frames = await asyncio.to_thread(_read_until_close, stalled)
        stalled.close()
        assert frames and frames[-1][0] == 0x8, f"no close frame at the end: {[op for op, _ in frames[-3:]]}"
        assert struct.unpack(">H", frames[-1][1][:2])[0] == 1013
        assert frames[-1][1][2:].decode().startswith("slow consumer")
        await a.close()

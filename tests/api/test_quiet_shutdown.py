"""Stopping an embedded server with players still connected (as right after a load test, when 1,000
sockets leave at once): every socket gets its close, and the log holds no traceback. uvicorn cancels
the sockets' tasks still cleaning up when its graceful timeout runs out; the timeout is 0 here, so
every socket's cleanup is cut off, as the slowest are at 1,000 players."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from tests.conftest import free_port
from tests.support.client import Api
from tests.support.server import ServerProcess

SOCKETS = 200


async def test_stop_with_players_connected_closes_them_without_tracebacks(tmp_path: Path) -> None:
    srv = ServerProcess(free_port(), {"TABLEFORGE_DATA_DIR": str(tmp_path), "TABLEFORGE_DATABASE_URL": "",
                                      "TABLEFORGE_REDIS_URL": "", "TABLEFORGE_SHUTDOWN_GRACE_SECONDS": "0",
                                      "TABLEFORGE_WS_MAX_PER_ADDRESS": "1000", "TABLEFORGE_WS_MAX_PER_USER": "100"},
                        name="quiet-stop")
    srv.start(timeout=60)
    try:
        async with Api(srv.base_url) as api:
            gm = await api.register("gm")
            players = [await api.register("pl") for _ in range(3)]
            room = await api.room(gm, *players)
            sockets = [await api.ws(who) for who in [gm, *players] for _ in range(SOCKETS // 4)]
            for ws in sockets:
                assert (await ws.request("join", room_id=room["id"]))["type"] == "ack"
            assert srv.proc is not None
            os.kill(srv.proc.pid, signal.SIGTERM)
            codes = await asyncio.gather(*(ws.closed_with(30) for ws in sockets))
            assert all(code is not None for code in codes), codes  # every socket was closed by the server
            assert await asyncio.to_thread(srv.proc.wait, 30) is not None
    finally:
        srv.stop()
    log = srv.log_path.read_text(errors="replace")
    assert "Shutting down" in log or "shutdown" in log.lower()  # the log is the stop's
    assert "Traceback" not in log, log[-3000:]
    assert "CancelledError" not in log, log[-3000:]

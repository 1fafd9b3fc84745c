"""permessage-deflate is off unless `TABLEFORGE_WS_PER_MESSAGE_DEFLATE=true`: a client that offers it
(every browser does) gets a plain socket, which works the same; turned on, it is negotiated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tableforge.config import Settings
from tests.conftest import free_port
from tests.support.client import Api, Ws
from tests.support.server import ServerProcess


async def offered_deflate(api: Api) -> tuple[str | None, dict[str, object]]:
    """A socket whose client offers permessage-deflate: the extensions the server accepted, and the
    answer to a `ping` over it."""
    who = await api.register("zip")
    ws = await Ws.connect(api.ws_url, who.token, compression="deflate")
    try:
        assert ws.sock.response is not None
        accepted = ws.sock.response.headers.get("Sec-WebSocket-Extensions")
        return accepted, await ws.request("ping")
    finally:
        await ws.close()


async def test_a_client_offering_deflate_gets_a_plain_socket_by_default(api: Api) -> None:
    accepted, pong = await offered_deflate(api)
    assert accepted is None
    assert pong["type"] == "pong"


async def test_deflate_is_negotiated_when_turned_on(tmp_path: Path) -> None:
    server = ServerProcess(free_port(), {"TABLEFORGE_DATA_DIR": str(tmp_path),
                                         "TABLEFORGE_WS_PER_MESSAGE_DEFLATE": "true"}, name="deflate")
    server.start()
    try:
        async with Api(server.base_url) as api:
            accepted, pong = await offered_deflate(api)
    finally:
        server.stop()
    assert accepted is not None and accepted.startswith("permessage-deflate")
    assert pong["type"] == "pong"


def test_a_bad_value_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="ws_per_message_deflate"):
        Settings(ws_per_message_deflate="sometimes")  # type: ignore[arg-type]
    env = {**os.environ, "TABLEFORGE_DATA_DIR": str(tmp_path), "TABLEFORGE_WS_PER_MESSAGE_DEFLATE": "sometimes"}
    done = subprocess.run([sys.executable, "-m", "tableforge", "serve", "--port", str(free_port())], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "TABLEFORGE_WS_PER_MESSAGE_DEFLATE" in done.stdout + done.stderr

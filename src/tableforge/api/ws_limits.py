"""The socket caps at the handshake: a lease for an admitted socket, or an error frame and close 4429."""

from __future__ import annotations

import contextlib

from fastapi import WebSocket

from tableforge.api.deps import client_address
from tableforge.realtime import protocol as p
from tableforge.realtime.socket_limits import SocketLease
from tableforge.services.runtime import Runtime

CLOSE_TOO_MANY = 4429

_MESSAGES = {
    "per_user": "too many open connections for this user",
    "per_address": "too many open connections from this address",
}


async def admit(rt: Runtime, websocket: WebSocket, user_id: str) -> SocketLease | None:
    """A lease to release when the socket ends (every path), or None: the socket was refused
    with a `too_many_connections` error frame and close code 4429, and the caller returns."""
    lease = rt.guards.sockets.acquire(user_id, client_address(websocket))
    if isinstance(lease, SocketLease):
        return lease
    with contextlib.suppress(Exception):  # the client may already be gone
        await websocket.send_text(p.encode({"type": "error", "id": None, "code": "too_many_connections",
                                            "message": _MESSAGES[lease], "details": {"limit": lease}}))
        await websocket.close(CLOSE_TOO_MANY, "too many connections")
    return None

"""Before a socket is accepted: refuse it while this instance drains, and read the room hint.

A draining instance answers the upgrade with HTTP 503 `instance_draining` (`Retry-After: 1`), which a
balancer can retry on another server before the client notices (HAProxy: `retry-on 503` with
`option redispatch`); a server without the ASGI denial-response extension accepts and closes with
1013 (try again later) after the same error in a frame.

`?room=<id>` names the room the client is about to join, for balancers that hash it (room affinity).
It is a routing hint only: it grants nothing (joining checks membership as always), and a missing
or malformed hint changes nothing but a counter.
"""

from __future__ import annotations

import contextlib
import re
from typing import Final

from fastapi import WebSocket

from tableforge.api.responses import JSON
from tableforge.domain import limits
from tableforge.observability.auth_metrics import WS_HANDSHAKES_REFUSED_BY_REASON
from tableforge.observability.balance_metrics import ROOM_HINTS_BY_RESULT
from tableforge.realtime import protocol as p
from tableforge.services.runtime import Runtime

CLOSE_TRY_AGAIN: Final = 1013
DRAINING_CODE: Final = "instance_draining"
DRAINING_MESSAGE: Final = "this instance is draining: connect again, another instance will answer"
_ROOM_HINT: Final = re.compile(limits.UUID_PATTERN)


def room_hint(websocket: WebSocket) -> str | None:
    """The well-formed `?room=` of the handshake, or None (absent or malformed: both are ignored)."""
    value = websocket.query_params.get("room")
    if value is None:
        ROOM_HINTS_BY_RESULT["absent"].inc()
        return None
    if len(value) > 64 or not _ROOM_HINT.fullmatch(value):
        ROOM_HINTS_BY_RESULT["malformed"].inc()
        return None
    ROOM_HINTS_BY_RESULT["given"].inc()
    return value


async def refused(rt: Runtime, websocket: WebSocket) -> bool:
    """True when the handshake was answered here (this instance drains) and must go no further."""
    room_hint(websocket)
    if not rt.drain.refusing:
        return False
    WS_HANDSHAKES_REFUSED_BY_REASON["draining"].inc()
    error = {"code": DRAINING_CODE, "message": DRAINING_MESSAGE}
    with contextlib.suppress(Exception):  # the peer may be gone already
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(JSON({"error": error}, status_code=503,
                                                      headers={"Retry-After": "1", "Cache-Control": "no-store"}))
        else:
            await websocket.accept()
            await websocket.send_text(p.encode({"type": "error", "id": None, **error}))
            await websocket.close(CLOSE_TRY_AGAIN, "instance draining")
    return True

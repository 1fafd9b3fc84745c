"""Closing the sockets of a revoked session or user, on this instance (PROTOCOL.md: close 4401).

A revocation travels as a control message (`session.revoked`, `user.revoked`) to every instance
(in-process in embedded mode), and each closes its own sockets. A socket that authenticated just
before the revocation but registers with the hub just after it would miss the message, so each
instance also remembers recent revocations for a few seconds (bounded) and the endpoint checks
a new socket against them once it is registered.
"""

from __future__ import annotations

import time
from typing import Any

from cachetools import TTLCache

from tableforge.observability import metrics
from tableforge.realtime.connection import Connection
from tableforge.realtime.hub import Hub

CLOSE_UNAUTHORIZED = 4401
SESSION_REVOKED = "session.revoked"
USER_REVOKED = "user.revoked"
# Longer than an authentication can take between the cache read and the hub registration.
REMEMBER_SECONDS = 30.0
REMEMBER_MAX = 10_000


class Revocations:
    """Recent revocations on this instance: session ids, and user ids with the session they spared."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._sessions: TTLCache[str, float] = TTLCache(REMEMBER_MAX, REMEMBER_SECONDS)
        self._users: TTLCache[str, tuple[float, str | None]] = TTLCache(REMEMBER_MAX, REMEMBER_SECONDS)

    def register(self) -> None:
        self.hub.on_control(SESSION_REVOKED, self._on_session)
        self.hub.on_control(USER_REVOKED, self._on_user)

    def _on_session(self, message: dict[str, Any]) -> None:
        session_id = message.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            return
        self._sessions[session_id] = time.monotonic()
        self._close([c for c in self.hub.connections.values() if c.session_id == session_id])

    def _on_user(self, message: dict[str, Any]) -> None:
        user_id = message.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            return
        keep = message.get("keep_session")
        keep = keep if isinstance(keep, str) else None
        self._users[user_id] = (time.monotonic(), keep)
        self._close([c for c in self.hub.connections.values()
                     if c.user_id == user_id and (keep is None or c.session_id != keep)])

    def revoked_since(self, conn: Connection, authenticated_at: float) -> bool:
        """Whether the socket's session or user was revoked after `authenticated_at` (a
        time.monotonic() taken before its session was read). Called once the socket is in the hub,
        with no await in between: any revocation after that reaches it through the handlers."""
        revoked_at = self._sessions.get(conn.session_id)
        user = self._users.get(conn.user_id)
        if user is not None and user[1] != conn.session_id and (revoked_at is None or user[0] > revoked_at):
            revoked_at = user[0]
        return revoked_at is not None and revoked_at >= authenticated_at

    @staticmethod
    def _close(conns: list[Connection]) -> None:
        for conn in conns:
            if not conn.closed:
                metrics.WS_CLOSED_BY_REASON["revoked"].inc()
                conn.close(CLOSE_UNAUTHORIZED, "session revoked")

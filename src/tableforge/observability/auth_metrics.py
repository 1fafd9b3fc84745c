"""Metrics of sessions, socket tickets and handshakes (fixed label sets only)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from tableforge.observability.metrics import Children

WS_TICKETS = Counter("tableforge_ws_tickets_total", "WebSocket tickets, by outcome (issued, redeemed, rejected)",
                     ["result"])
WS_TICKETS_BY_RESULT = Children(WS_TICKETS)
WS_TICKETS_HELD = Gauge("tableforge_ws_tickets_held", "Unredeemed tickets held in process (embedded mode)",
                        multiprocess_mode="livesum")
SESSIONS_REVOKED = Counter("tableforge_sessions_revoked_total",
                           "Sessions revoked, by cause (logout, password, disabled)", ["cause"])
SESSIONS_REVOKED_BY_CAUSE = Children(SESSIONS_REVOKED)
WS_HANDSHAKES_REFUSED = Counter("tableforge_ws_handshakes_refused_total",
                                "Socket handshakes refused, by reason (unauthorized, origin, unavailable)", ["reason"])
WS_HANDSHAKES_REFUSED_BY_REASON = Children(WS_HANDSHAKES_REFUSED)

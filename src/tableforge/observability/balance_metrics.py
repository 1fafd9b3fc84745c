"""Metrics of draining, rebalancing and the balancer's room hint (fixed label sets only)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from tableforge.observability.metrics import Children

DRAIN_STATE = Gauge("tableforge_drain_state", "This instance's drain: 0 serving, 1 draining, 2 drained",
                    multiprocess_mode="max")
DRAIN_PENDING = Gauge("tableforge_drain_pending_sockets",
                      "Sockets a drain or shed still has to close on this instance", multiprocess_mode="livesum")
DRAINS = Counter("tableforge_drains_total", "Drains begun on this instance, by cause (signal, admin)", ["cause"])
DRAINS_BY_CAUSE = Children(DRAINS)
SOCKETS_MOVED = Counter("tableforge_sockets_moved_total",
                        "Sockets closed with 1012 so that they reconnect elsewhere, by why (drain, rebalance)",
                        ["why"])
SOCKETS_MOVED_BY_WHY = Children(SOCKETS_MOVED)
SHEDS = Counter("tableforge_rebalance_sheds_total",
                "Shed requests this instance carried out, by origin (admin, policy)", ["origin"])
SHEDS_BY_ORIGIN = Children(SHEDS)
ROOM_HINTS = Counter("tableforge_ws_room_hints_total",
                     "Socket handshakes by their ?room= hint: given, absent, malformed (ignored)", ["result"])
ROOM_HINTS_BY_RESULT = Children(ROOM_HINTS)
PHASES = {"serving": 0, "draining": 1, "drained": 2}

"""Prometheus metrics. Labels hold only small fixed sets (route templates, message types), never ids."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUEST_SECONDS = Histogram(
    "tableforge_http_request_seconds", "HTTP request latency by route template, method and status",
    ["method", "route", "status"], buckets=_LATENCY_BUCKETS,
)
WS_CONNECTIONS = Gauge("tableforge_ws_connections", "Open WebSocket connections on this instance",
                       multiprocess_mode="livesum")
WS_ROOMS = Gauge("tableforge_ws_rooms", "Rooms with at least one local socket on this instance",
                 multiprocess_mode="livesum")
WS_MESSAGES_IN = Counter("tableforge_ws_messages_in_total", "Client messages received, by type", ["type"])
WS_MESSAGES_OUT = Counter("tableforge_ws_messages_out_total", "Frames queued to sockets, by kind", ["kind"])
WS_ERRORS = Counter("tableforge_ws_errors_total", "Error frames sent, by code", ["code"])
WS_CLOSED = Counter("tableforge_ws_closed_total", "Sockets closed by the server, by reason", ["reason"])
WS_DROPPED = Counter("tableforge_ws_dropped_total", "Frames dropped (ephemeral under load), by kind", ["kind"])
WS_BATCHES = Counter("tableforge_ws_batches_total",
                     "Batch messages sent (several queued frames in one, to sockets that announced batch)")
WS_BATCHED_FRAMES = Counter("tableforge_ws_batched_frames_total", "Frames sent inside batch messages")
WS_SEND_QUEUE = Histogram("tableforge_ws_send_queue_depth", "Send queue depth seen at enqueue",
                          buckets=(0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
WS_HANDLE_SECONDS = Histogram("tableforge_ws_handle_seconds", "Time to handle one client message, by type",
                              ["type"], buckets=_LATENCY_BUCKETS)
DELIVERY_SECONDS = Histogram(
    "tableforge_delivery_seconds", "Event creation to local fan-out (enqueue on every socket)",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
REORDER_BUFFERED = Counter("tableforge_reorder_buffered_total", "Room events that arrived early and waited")
REORDER_GAP_FILLS = Counter("tableforge_reorder_gap_fills_total", "Gaps filled from the stored history")
REORDER_DROPPED = Counter("tableforge_reorder_dropped_total",
                          "Early events not kept by a full reorder buffer (read back from the log instead)")
HUB_RESYNCS = Counter("tableforge_hub_resyncs_total",
                      "room.resync frames sent: a socket too far behind rejoins instead of a replay")
HUB_FILL_FAILURES = Counter("tableforge_hub_fill_failures_total", "Catch-up reads of the event log that failed")
HUB_STALLED_ROOMS = Gauge("tableforge_hub_stalled_rooms", "Local rooms behind the event log for over 5 s",
                          multiprocess_mode="livesum")
# The per-room token owner index that checks preview moves (realtime/room_tokens.py).
ROOM_TOKENS_ROOMS = Gauge("tableforge_room_tokens_rooms", "Rooms whose token owners this instance keeps",
                          multiprocess_mode="livesum")
ROOM_TOKENS_TOKENS = Gauge("tableforge_room_tokens_tokens", "Tokens in the room token owner index",
                           multiprocess_mode="livesum")
ROOM_TOKENS_LOADS = Counter("tableforge_room_tokens_loads_total", "Room token owner index loads from the database")
ROOM_TOKENS_GAPS = Counter("tableforge_room_tokens_gaps_total",
                           "Room token indexes dropped because a delivered version skipped one")
ROOM_TOKENS_EVICTED = Counter("tableforge_room_tokens_evicted_total",
                              "Room token indexes evicted to stay within the room limit")
# Hidden information: the bounded caches behind audiences and fog (docs/protocol.md, "Hidden information").
AUDIENCE_CACHE = Gauge("tableforge_audience_cache_entries",
                       "Parsed audience selectors and routings kept (at most 4096 each)", multiprocess_mode="livesum")
FOG_CACHE = Gauge("tableforge_fog_cache_scenes", "Parsed scene fogs kept for moves on fogged scenes (at most 1024)",
                  multiprocess_mode="livesum")
ADD_CONTEXTS = Gauge("tableforge_token_add_rooms",
                     "Rooms whose players' scene, fog-freeness and token defaults are kept for the one-statement "
                     "token.add on PostgreSQL (at most 10000)", multiprocess_mode="livesum")
FOGGED_ROOM_HINTS = Gauge("tableforge_fogged_room_hints",
                          "Rooms whose moves go straight to the transaction for a few seconds (at most 10000)",
                          multiprocess_mode="livesum")
# Group commit of moves (db/pg_move_batch.py; SQLite: db/sqlite_event_log.py): moves per batch, and
# moves waiting for the next one.
DB_MOVE_BATCH = Histogram("tableforge_db_move_batch_size", "Moves written by one batch (statement or transaction)",
                          buckets=(1, 2, 4, 8, 16, 32, 64))
DB_MOVE_QUEUE = Gauge("tableforge_db_move_queue", "Moves waiting for the next batch (at most 4096)",
                      multiprocess_mode="livesum")
DB_TRANSACTION_SECONDS = Histogram("tableforge_db_transaction_seconds", "Write transaction duration",
                                   buckets=_LATENCY_BUCKETS)
# Every database failure a caller saw as a 503 (engine.unavailable): the "PostgreSQL degraded" signal.
DB_ERRORS = Counter("tableforge_db_errors_total",
                    "Database operations that failed: code=db_unavailable|db_timeout|db_pool_exhausted", ["code"])
for _code in ("db_unavailable", "db_timeout", "db_pool_exhausted"):
    DB_ERRORS.labels(_code)  # present from the start at 0, so rate() sees the first failure
DB_QUERY_SECONDS = Histogram("tableforge_db_query_seconds", "Named query duration", ["query"],
                             buckets=_LATENCY_BUCKETS)
# The in-process byte cache of small asset files (api/asset_files.py): result = hit | miss | bypass
# (a Range request or a file over TABLEFORGE_ASSET_CACHE_FILE_BYTES, streamed from disk).
ASSET_CACHE_BYTES = Gauge("tableforge_asset_cache_bytes",
                          "Bytes of asset files kept in memory (at most TABLEFORGE_ASSET_CACHE_BYTES)",
                          multiprocess_mode="livesum")
ASSET_CACHE_FILES = Gauge("tableforge_asset_cache_files", "Asset files kept in memory", multiprocess_mode="livesum")
ASSET_CACHE_REQUESTS = Counter("tableforge_asset_cache_requests_total",
                               "GET /assets/... past the 404 and 304 checks, by result: hit, miss (read, then "
                               "kept), bypass (streamed from disk)", ["result"])
ASSET_CACHE_EVICTIONS = Counter("tableforge_asset_cache_evictions_total",
                                "Asset files dropped from memory to stay within TABLEFORGE_ASSET_CACHE_BYTES")
LIVE_INSTANCES = Gauge("tableforge_live_instances", "Instances in the registry, as this one last saw it",
                       multiprocess_mode="max")
PRESENCE_CHANGES = Counter("tableforge_presence_changes_total",
                           "Players coming online or going offline in a room, by how", ["change"])
# Undo (db/undo_log.py): outcome = undone | nothing_to_undo | undo_conflict | refused (another refusal).
UNDOS = Counter("tableforge_undos_total", "undo requests by outcome", ["outcome"])
BROADCASTS = Counter("tableforge_broadcasts_total", "system.broadcast frames sent to local sockets")


class Children(dict[str, Any]):
    """`metric.labels(value)` looked up once per label value, then kept: `labels()` builds a key and
    takes a lock on every call, too much for the per-message paths. Only for small fixed label sets."""

    def __init__(self, metric: Any) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, value: str) -> Any:
        child = self[value] = self.metric.labels(value)
        return child


WS_IN_BY_TYPE = Children(WS_MESSAGES_IN)
WS_OUT_BY_KIND = Children(WS_MESSAGES_OUT)
WS_ERRORS_BY_CODE = Children(WS_ERRORS)
WS_CLOSED_BY_REASON = Children(WS_CLOSED)
WS_DROPPED_BY_KIND = Children(WS_DROPPED)
WS_HANDLE_BY_TYPE = Children(WS_HANDLE_SECONDS)
DB_QUERY_BY_NAME = Children(DB_QUERY_SECONDS)
UNDO_BY_OUTCOME = Children(UNDOS)

GC_PAUSE_SECONDS = Histogram(
    "tableforge_gc_pause_seconds",
    "Collections of the older generations (1, 2): the event loop stands still for each",
    ["generation"], buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
_gc_started = 0.0
_GC_PAUSE_BY_GENERATION = Children(GC_PAUSE_SECONDS)


def _on_gc(phase: str, info: dict[str, int]) -> None:
    global _gc_started
    if info["generation"] == 0:
        return  # frequent and short: not worth a clock read each
    if phase == "start":
        _gc_started = time.perf_counter()
    else:
        _GC_PAUSE_BY_GENERATION[str(info["generation"])].observe(time.perf_counter() - _gc_started)


def track_gc_pauses() -> None:
    """Time every generation-1 and -2 collection into GC_PAUSE_SECONDS (once per process)."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)


LOOP_LAG_SECONDS = Histogram(
    "tableforge_event_loop_lag_seconds",
    "How late a 100 ms timer fires: the time every ready callback waited for the event loop",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


async def monitor_loop_lag(interval: float = 0.1) -> None:
    """Run forever (as a background task): observe LOOP_LAG_SECONDS ten times a second."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        LOOP_LAG_SECONDS.observe(max(0.0, loop.time() - due))

# Guessing and flooding limits (services/attempts.py, realtime/socket_limits.py, services/decodes.py).
ATTEMPTS_REFUSED = Counter("tableforge_attempts_refused_total",
                           "Guesses refused with 429, by limiter (login, invite) and the full key (user, address)",
                           ["limiter", "key"])
ATTEMPT_KEYS = Gauge("tableforge_attempt_tracker_keys",
                     "Guess counters held in memory (embedded mode, or while Redis is down)",
                     multiprocess_mode="livesum")
ATTEMPT_KEYS_EVICTED = Counter("tableforge_attempt_tracker_evictions_total",
                               "Guess counters dropped from memory to stay within TABLEFORGE_ATTEMPT_TRACKER_MAX_KEYS")
ATTEMPT_REDIS_ERRORS = Counter("tableforge_attempt_tracker_redis_errors_total",
                               "Redis failures of the guess counters (this instance counted in memory instead)")
WS_REFUSED = Counter("tableforge_ws_refused_total", "Sockets refused at the handshake (close 4429), by reason",
                     ["reason"])
IMAGE_DECODES_ACTIVE = Gauge("tableforge_image_decodes_in_progress", "Image checks (Pillow) running now",
                             multiprocess_mode="livesum")
IMAGE_DECODE_CONCURRENCY = Histogram("tableforge_image_decode_concurrency",
                                     "Image checks running (this one included) when one starts",
                                     buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64))
IMAGE_DECODE_WAITS = Counter("tableforge_image_decode_waits_total",
                             "Uploads that had to wait for a free image check slot")
IMAGE_DECODES_REFUSED = Counter("tableforge_image_decodes_refused_total",
                                "Uploads refused with 503 server_busy after waiting too long for a slot")


class RouteTimings:
    """The HTTP latency histogram's child per (method, route template, status), looked up once
    (`labels()` builds a key and takes a lock on every call). Methods come from clients, so at most
    `limit` children are kept looked up; the rest are looked up on each request."""

    __slots__ = ("_children", "_limit")

    def __init__(self, limit: int = 4096) -> None:
        self._children: dict[tuple[str, str, int], Any] = {}
        self._limit = limit

    def __call__(self, method: str, template: str, status: int) -> Any:
        key = (method, template, status)
        child = self._children.get(key)
        if child is None:
            child = HTTP_REQUEST_SECONDS.labels(method, template, str(status))
            if len(self._children) < self._limit:
                self._children[key] = child
        return child

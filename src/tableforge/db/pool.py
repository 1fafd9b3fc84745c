"""The connection pool's numbers (from settings) and its state (as metrics and as a report).

How PROTOCOL.md's pool settings map onto SQLAlchemy's `QueuePool` (asyncpg under it):

- `TABLEFORGE_DB_POOL_MIN` → `pool_size`: the connections the pool keeps open while idle.
- `TABLEFORGE_DB_POOL_MAX` → `pool_size + max_overflow`: under load the pool opens up to
  `MAX - MIN` more; each of those is closed when it is returned while `MIN` are already idle,
  so a quiet instance falls back to `MIN` server connections by itself.
- `TABLEFORGE_DB_IDLE_TIMEOUT` → a kept connection that sat unused longer than this is replaced
  before use (firewalls, NAT and PgBouncer silently drop idle connections; a long-lived backend
  also grows its caches), and `pool_recycle` bounds any connection's age.
- `TABLEFORGE_DB_CONNECTION_TIMEOUT` → both `pool_timeout` (how long a request may wait for a
  free connection before `db_pool_exhausted`) and asyncpg's connect timeout.
- `TABLEFORGE_DB_STATEMENT_TIMEOUT` → PostgreSQL's `statement_timeout`, set per connection at
  connect time, so a runaway query is cancelled by the server (`db_timeout`), not by us.
- `TABLEFORGE_DB_SSL_MODE` → asyncpg's `ssl` (libpq's sslmode names).

Sizing against workers: every worker process has its own pool, so the server sees up to
`workers * instances * MAX` connections; keep that under PostgreSQL's `max_connections` minus
a reserve for admin and migrations (or put PgBouncer in front). A connection is only held for
one transaction (a few ms), never across a WebSocket's life, so 20 connections serve 1,000
sockets: at 1,000 moves/s of ~1 ms each, ~1 connection is busy on average, and bursts queue for
a free one (the wait is `tableforge_db_pool_wait_seconds`) instead of failing. For a steady
heavy load set MIN = MAX, which avoids opening and closing the overflow connections.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

POOL_SIZE = Gauge("tableforge_db_pool_size", "Connections the pool holds open (idle + in use)", ["pool"])
POOL_IDLE = Gauge("tableforge_db_pool_idle", "Open connections waiting in the pool", ["pool"])
POOL_IN_USE = Gauge("tableforge_db_pool_in_use", "Connections checked out by requests", ["pool"])
POOL_OVERFLOW = Gauge("tableforge_db_pool_overflow", "Connections open beyond the pool's minimum", ["pool"])
POOL_WAITING = Gauge("tableforge_db_pool_waiting", "Requests waiting for a free connection", ["pool"])
POOL_WAIT_SECONDS = Histogram(
    "tableforge_db_pool_wait_seconds", "Time a request waited to get a connection (pre-ping included)", ["pool"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
POOL_TIMEOUTS = Counter("tableforge_db_pool_timeouts_total", "Requests that found no free connection in time",
                        ["pool"])
POOL_CONNECTS = Counter("tableforge_db_pool_connects_total", "New server connections opened", ["pool"])
POOL_INVALIDATED = Counter("tableforge_db_pool_invalidated_total",
                           "Connections dropped as broken or idle too long", ["pool"])


@dataclass
class PoolState:
    """Per-engine counters the pool itself does not keep (SQLAlchemy has no 'waiting' count)."""

    name: str
    idle_timeout: float | None
    waiting: int = 0
    wait_count: int = 0
    wait_total: float = 0.0
    wait_max: float = 0.0
    timeouts: int = 0
    connects: int = 0
    invalidated: int = 0
    _waiting: Any = field(init=False, repr=False)
    _timeouts: Any = field(init=False, repr=False)
    _wait_seconds: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Bound once: these run on every checkout, and labels() costs more than the update.
        self._waiting = POOL_WAITING.labels(self.name)
        self._timeouts = POOL_TIMEOUTS.labels(self.name)
        self._wait_seconds = POOL_WAIT_SECONDS.labels(self.name)

    def begin_wait(self) -> float:
        self.waiting += 1
        self._waiting.inc()
        return time.perf_counter()

    def end_wait(self, started: float, *, timed_out: bool = False) -> None:
        waited = time.perf_counter() - started
        self.waiting -= 1
        self._waiting.dec()
        if timed_out:
            self.timeouts += 1
            self._timeouts.inc()
            return
        self.wait_count += 1
        self.wait_total += waited
        self.wait_max = max(self.wait_max, waited)
        self._wait_seconds.observe(waited)


def instrument(engine: AsyncEngine, state: PoolState) -> None:
    """Keep the gauges current from pool events, and enforce the idle timeout at checkout."""
    pool = engine.sync_engine.pool
    size, idle, in_use, overflow = (g.labels(state.name) for g in (POOL_SIZE, POOL_IDLE, POOL_IN_USE, POOL_OVERFLOW))
    connects, invalidated = POOL_CONNECTS.labels(state.name), POOL_INVALIDATED.labels(state.name)

    def refresh() -> None:
        if isinstance(pool, QueuePool):
            checked_in, checked_out = pool.checkedin(), pool.checkedout()
            size.set(checked_in + checked_out)
            idle.set(checked_in)
            in_use.set(checked_out)
            overflow.set(max(pool.overflow(), 0))

    @event.listens_for(pool, "connect")
    def _connect(_dbapi: Any, _record: Any) -> None:
        state.connects += 1
        connects.inc()

    @event.listens_for(pool, "checkout")
    def _checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get("tf_checked_in")
        if state.idle_timeout is not None and last is not None and time.monotonic() - last > state.idle_timeout:
            record.info.pop("tf_checked_in", None)
            # The pool closes this one and retries the checkout with a fresh connection.
            raise DisconnectionError("idle longer than TABLEFORGE_DB_IDLE_TIMEOUT")
        refresh()

    @event.listens_for(pool, "checkin")
    def _checkin(_dbapi: Any, record: Any) -> None:
        if record is not None:
            record.info["tf_checked_in"] = time.monotonic()
        refresh()

    @event.listens_for(pool, "invalidate")
    def _invalidate(_dbapi: Any, _record: Any, _exc: Any) -> None:
        state.invalidated += 1
        invalidated.inc()

    @event.listens_for(pool, "close")
    def _close(_dbapi: Any, _record: Any) -> None:
        refresh()


def stats(engine: AsyncEngine, state: PoolState, *, pool_min: int, pool_max: int) -> dict[str, Any]:
    """The pool as a report (GET /api/admin/db/pool, `tableforge db stats`)."""
    pool = engine.sync_engine.pool
    out: dict[str, Any] = {"name": state.name, "min": pool_min, "max": pool_max}
    if isinstance(pool, QueuePool):
        out |= {"size": pool.checkedin() + pool.checkedout(), "idle": pool.checkedin(),
                "in_use": pool.checkedout(), "overflow": max(pool.overflow(), 0)}
    out |= {
        "waiting": state.waiting,
        "waits": state.wait_count,
        "wait_avg_ms": round(state.wait_total / state.wait_count * 1000, 3) if state.wait_count else 0.0,
        "wait_max_ms": round(state.wait_max * 1000, 3),
        "timeouts": state.timeouts,
        "connects": state.connects,
        "invalidated": state.invalidated,
    }
    return out

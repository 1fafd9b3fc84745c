"""The connection pool's numbers (from settings), its state (as metrics and as a report), and the
pool class that gives MIN / MAX / IDLE_TIMEOUT their usual meaning (HikariCP's).

How PROTOCOL.md's pool settings map onto SQLAlchemy's pool (asyncpg under it):

- `TABLEFORGE_DB_POOL_MAX` → `pool_size`, with `max_overflow=0`: the pool opens connections
  lazily, one when a request finds none idle, up to MAX; past MAX a request waits for a free one.
- `TABLEFORGE_DB_POOL_MIN` and `TABLEFORGE_DB_IDLE_TIMEOUT` → `ElasticQueuePool` and
  `housekeep()`: a connection above MIN stays open while it is used and is closed once it has
  sat idle for IDLE_TIMEOUT (longest idle first, never below MIN), so a quiet instance falls
  back to MIN by itself and a steady load opens no connections after warm-up.
  Why not SQLAlchemy's own `pool_size=MIN, max_overflow=MAX-MIN`: QueuePool closes an overflow
  connection as soon as it is returned while MIN are idle, so any load needing more than MIN
  at once opened and closed a PostgreSQL connection (a backend fork, TCP, an SSL attempt,
  authentication, our per-connection settings) for nearly every checkout beyond MIN: measured
  in docs/benchmarks.md ("the pool keeps its connections under steady load").
- `TABLEFORGE_DB_IDLE_TIMEOUT` also → a kept connection (one of the MIN) that sat unused longer
  than this is replaced before use (firewalls, NAT and PgBouncer silently drop idle connections;
  a long-lived backend also grows its caches), and `pool_recycle` bounds any connection's age.
- `TABLEFORGE_DB_CONNECTION_TIMEOUT` → both `pool_timeout` (how long a request may wait for a
  free connection before `db_pool_exhausted`) and asyncpg's connect timeout.
- `TABLEFORGE_DB_STATEMENT_TIMEOUT` → PostgreSQL's `statement_timeout`, set per connection at
  connect time, so a runaway query is cancelled by the server (`db_timeout`), not by us.
- `TABLEFORGE_DB_SSL_MODE` → asyncpg's `ssl` (libpq's sslmode names); unset = asyncpg's default,
  libpq's `prefer` (try TLS, fall back to plain). Kept as the default on purpose: the refused TLS
  request costs ~0.7 ms of our CPU per new connection, and with connections kept that is paid at
  warm-up only, while `disable` by default would break a server that insists on TLS.

Sizing against workers: every worker process has its own pool, so the server sees up to
`workers * instances * MAX` connections; keep that under PostgreSQL's `max_connections` minus
a reserve for admin and migrations (or put PgBouncer in front). A connection is only held for
one transaction (a few ms), never across a WebSocket's life, so 20 connections serve 1,000
sockets: at 1,000 moves/s of ~1 ms each, ~1 connection is busy on average, and bursts queue for
a free one (the wait is `tableforge_db_pool_wait_seconds`) instead of failing. A burst leaves up
to MAX open for IDLE_TIMEOUT afterwards; MIN = MAX keeps MAX open for good.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, QueuePool
from sqlalchemy.util import greenlet_spawn

log = structlog.get_logger("tableforge.db")

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
    keep: int = 0  # MIN: the connections the pool keeps open while idle (overflow = open beyond it)
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
    refresh: Callable[[], None] = field(init=False, repr=False, default=lambda: None)  # set by instrument()

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


# When a pooled connection was last returned (monotonic seconds), in its record's `info`.
CHECKED_IN = "tf_checked_in"


class ElasticQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio QueuePool, sized `pool_size=MAX, max_overflow=0` (connections opened on
    demand and kept when returned), plus the one thing it lacks: taking out the connections that
    sat idle too long, so that the pool shrinks back towards MIN when the load goes away."""

    def take_idle(self, keep: int, idle_timeout: float) -> list[ConnectionPoolEntry]:
        """Remove from the pool the connections idle for longer than `idle_timeout`, longest idle
        first, as long as more than `keep` stay open; the caller closes them (`retire`).

        Synchronous and without an await, so no checkout sees the pool half-sorted: the idle ones
        are all taken out, and the ones that stay are put back in their order (LIFO: the most
        recently used is handed out next, the rest sink and age out)."""
        now = time.monotonic()
        surplus = self.checkedin() + self.checkedout() - keep
        if surplus <= 0 or self.checkedin() == 0:
            return []
        idle: list[ConnectionPoolEntry] = []
        while not self._pool.empty():
            idle.append(self._pool.get(False))
        oldest_first = sorted(idle, key=lambda r: r.info.get(CHECKED_IN, now))
        taken = [r for r in oldest_first[:surplus] if now - r.info.get(CHECKED_IN, now) > idle_timeout]
        gone = {id(r) for r in taken}
        stay = [r for r in idle if id(r) not in gone]
        for record in reversed(stay) if self._pool.use_lifo else stay:
            self._pool.put(record, False)
        return taken

    async def retire(self, record: ConnectionPoolEntry, within: float) -> None:
        """Close a connection `take_idle` took out, and free its place (the pool may open a new one).
        The place is freed only after the close, so the server never sees more than MAX."""
        try:
            async with asyncio.timeout(within):
                await greenlet_spawn(record.close)  # asyncpg's close awaits: run it as SQLAlchemy does
        except Exception as exc:  # a dead or hung connection: it is dropped either way
            log.info("db_pool_retire_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._dec_overflow()


async def housekeep(engine: AsyncEngine, state: PoolState, *, keep: int, idle_timeout: float,
                    close_timeout: float) -> None:
    """Forever: every quarter of `idle_timeout` (at most 5 s), close the connections above `keep`
    (MIN) that sat idle for `idle_timeout`. A connection is therefore closed between
    `idle_timeout` and `idle_timeout` + 5 s after its last use. Started by `Database`."""
    interval = min(max(idle_timeout / 4, 0.05), 5.0)
    while True:
        await asyncio.sleep(interval)
        pool = engine.sync_engine.pool  # a new object after `engine.dispose()`
        if not isinstance(pool, ElasticQueuePool):
            return
        try:
            for record in pool.take_idle(keep, idle_timeout):
                await pool.retire(record, close_timeout)
        except Exception:  # a bug here must not stop the housekeeping for good
            log.exception("db_pool_housekeeping_failed")
        state.refresh()


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
            overflow.set(max(checked_in + checked_out - state.keep, 0))

    state.refresh = refresh

    @event.listens_for(pool, "connect")
    def _connect(_dbapi: Any, _record: Any) -> None:
        state.connects += 1
        connects.inc()

    @event.listens_for(pool, "checkout")
    def _checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get(CHECKED_IN)
        if state.idle_timeout is not None and last is not None and time.monotonic() - last > state.idle_timeout:
            record.info.pop(CHECKED_IN, None)
            # The pool closes this one and retries the checkout with a fresh connection.
            raise DisconnectionError("idle longer than TABLEFORGE_DB_IDLE_TIMEOUT")
        refresh()

    @event.listens_for(pool, "checkin")
    def _checkin(_dbapi: Any, record: Any) -> None:
        if record is not None:
            record.info[CHECKED_IN] = time.monotonic()
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
        open_now = pool.checkedin() + pool.checkedout()
        out |= {"size": open_now, "idle": pool.checkedin(), "in_use": pool.checkedout(),
                "overflow": max(open_now - pool_min, 0)}
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

"""Tier 3 invalidation: tell a Varnish/CDN in front of us to drop responses tagged with keys.

Responses carry `Surrogate-Key`/`xkey` headers (see `http.surrogate_keys`); a change calls
`EdgePurger.purge("catalog", "system-<id>")`. The purger batches keys from concurrent changes
into one request per edge URL — `PURGE` with `xkey: k1 k2` (Varnish vmod_xkey) or `BAN` with
the same header for a VCL that bans on `obj.http.Surrogate-Key` — sent by one background task.

It never fails the caller: the queue is bounded (keys over the bound are dropped and counted),
HTTP errors are logged and counted, and `purge()` waits at most `wait` seconds for delivery, so a
write's response normally leaves after the edge has dropped the old copy (the next read through
the edge is fresh) but is never held up by a slow or dead edge. A read that was already on its
way to the origin when the purge ran can put the old body back; `repeat` > 0 purges every key a
second time that many seconds later to close that window (bounded anyway by `s-maxage`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from . import metrics

if TYPE_CHECKING:
    import httpx

    from tableforge.config import Settings

log = structlog.get_logger("tableforge.cache.purge")


class EdgePurger:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        method: str = "PURGE",
        header: str = "xkey",
        timeout: float = 2.0,
        max_pending: int = 1000,
        wait: float = 1.0,
        repeat: float = 0.0,
    ) -> None:
        if method not in ("PURGE", "BAN"):
            raise ValueError("method must be PURGE or BAN")
        self.urls = [u for u in urls if u]
        self.method = method
        self.header = header
        self.timeout = timeout
        self.max_pending = max_pending
        self.wait = wait
        self.repeat = repeat
        # key -> purge it again `repeat` s after sending (False for keys that are the repeat).
        self._pending: dict[str, bool] = {}
        self._wake: asyncio.Event | None = None
        self._done: asyncio.Future[bool] | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._closed = False
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.keys_purged = 0
        self.last_error: str | None = None

    # -- API ---------------------------------------------------------------------------------

    def purge_nowait(self, *keys: str) -> None:
        """Queue keys for purging; returns at once. Never raises."""
        try:
            self._enqueue(keys, repeat=self.repeat > 0)
        except Exception:  # pragma: no cover - defensive: a purge must never fail a write
            log.warning("cache.edge_purge_enqueue_failed", exc_info=True)

    async def purge(self, *keys: str, wait: float | None = None) -> bool:
        """Queue keys and wait up to `wait` (default: the configured wait) seconds for the
        request carrying them to be answered. True if every edge confirmed; never raises."""
        if not keys or not self.urls or self._closed:
            return False
        try:
            done = self._enqueue(keys, repeat=self.repeat > 0)
            seconds = self.wait if wait is None else wait
            if done is None or seconds <= 0:
                return False
            return await asyncio.wait_for(asyncio.shield(done), seconds)
        except (TimeoutError, asyncio.CancelledError):
            return False
        except Exception:  # pragma: no cover - defensive
            log.warning("cache.edge_purge_failed", exc_info=True)
            return False

    async def close(self, drain: float = 1.0) -> None:
        """Send what is queued (for at most `drain` seconds), then stop."""
        self._closed = True
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()
        task = self._task
        if task is not None:
            if self._wake is not None:
                self._wake.set()
            if self._pending:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(self._done_future()), drain)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            self._task = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    def stats(self) -> dict[str, Any]:
        return {
            "enabled": bool(self.urls),
            "urls": list(self.urls),
            "method": self.method,
            "requests_ok": self.sent,
            "requests_failed": self.failed,
            "keys_purged": self.keys_purged,
            "keys_dropped": self.dropped,
            "pending": len(self._pending),
            "last_error": self.last_error,
        }

    # -- internals ---------------------------------------------------------------------------

    def _done_future(self) -> asyncio.Future[bool]:
        if self._done is None or self._done.done():
            self._done = asyncio.get_running_loop().create_future()
        return self._done

    def _enqueue(self, keys: Sequence[str], *, repeat: bool) -> asyncio.Future[bool] | None:
        if not self.urls or self._closed:
            return None
        added = False
        for key in keys:
            if key in self._pending:
                self._pending[key] = self._pending[key] or repeat
                added = True
            elif len(self._pending) < self.max_pending:
                self._pending[key] = repeat
                added = True
            else:
                self.dropped += 1
                metrics.EDGE_PURGES.labels(outcome="dropped").inc()
                log.warning("cache.edge_purge_dropped", key=key, queue=self.max_pending)
        if not added:
            return None
        done = self._done_future()
        self._ensure_worker()
        assert self._wake is not None
        self._wake.set()
        return done

    def _ensure_worker(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="edge-purger")

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending, {}
                done, self._done = self._done, None
                ok = await self._send(list(batch))
                if done is not None and not done.done():
                    done.set_result(ok)
                again = [key for key, repeat in batch.items() if repeat]
                if again and not self._closed:
                    self._schedule_repeat(again)

    def _schedule_repeat(self, keys: list[str]) -> None:
        holder: list[asyncio.TimerHandle] = []

        def fire() -> None:
            for handle in holder:
                self._timers.discard(handle)
            self._enqueue(keys, repeat=False)

        handle = asyncio.get_running_loop().call_later(self.repeat, fire)
        holder.append(handle)
        self._timers.add(handle)

    async def _send(self, keys: list[str]) -> bool:
        if self._client is None:
            self._client = _http_client(self.timeout)
        value = " ".join(keys)
        results = await asyncio.gather(*(self._send_one(url, value) for url in self.urls))
        ok = all(results)
        if ok:
            self.keys_purged += len(keys)
        return ok

    async def _send_one(self, url: str, value: str) -> bool:
        assert self._client is not None
        try:
            response = await self._client.request(self.method, url, headers={self.header: value})
            if response.status_code >= 400:
                import httpx  # loaded by _http_client

                raise httpx.HTTPStatusError(f"{response.status_code}", request=response.request, response=response)
        except Exception as exc:
            self.failed += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            metrics.EDGE_PURGES.labels(outcome="failed").inc()
            log.warning("cache.edge_purge_failed", url=url, keys=value, error=self.last_error)
            return False
        self.sent += 1
        metrics.EDGE_PURGES.labels(outcome="ok").inc()
        return True


def _http_client(timeout: float) -> httpx.AsyncClient:
    """httpx is imported when the first purge is sent, not with the module: a server without a
    purge URL never needs it (~3 MB of RSS). Through `without_rich`: its command-line module would
    load rich and pygments."""
    from tableforge import without_rich

    with without_rich():
        import httpx

    return httpx.AsyncClient(timeout=timeout)


def build_purger(settings: Settings) -> EdgePurger | None:
    """The purger for these settings, or None when no `cdn_purge_url` is configured."""
    if not settings.cdn_purge_url:
        return None
    urls = [u.strip() for u in settings.cdn_purge_url.split(",") if u.strip()]
    return EdgePurger(
        urls,
        method=settings.cdn_purge_method,
        header=settings.cdn_purge_header,
        timeout=settings.cdn_purge_timeout,
        max_pending=settings.cdn_purge_queue,
        wait=settings.cdn_purge_wait,
        repeat=settings.cdn_purge_repeat,
    )

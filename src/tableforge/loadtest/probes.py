"""What the load generator reads from the servers: health, /metrics before and after, the admin
stats, and CPU and memory of the server processes (psutil, when they run on this machine)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import psutil

from tableforge.loadtest.hist import Series, add_series, counter_delta, hist_delta, median, parse_prometheus
from tableforge.loadtest.meter import TreeMeter

SCRAPE_TIMEOUT = aiohttp.ClientTimeout(total=20)
RESET_NAMES = ("process_start_time_seconds",)


class Unreachable(Exception):
    """A server URL that does not answer `GET /health`."""


def _is_local(host: str) -> bool:
    if host in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        return True
    with contextlib.suppress(OSError):
        return socket.gethostbyname(host) in ("127.0.0.1", socket.gethostbyname(socket.gethostname()))
    return False


def pid_listening_on(port: int) -> int | None:
    """The pid of the local process listening on `port` (same-user processes only)."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return int(conn.pid)
    return None


@dataclass
class ServerProbe:
    url: str
    admin_token: str | None = None
    pid: int | None = None
    instance_id: str | None = None
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    meter: TreeMeter | None = None

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def local(self) -> bool:
        return _is_local(urlsplit(self.url).hostname or "")

    async def check(self, http: aiohttp.ClientSession) -> None:
        try:
            async with http.get(f"{self.url}/health", timeout=aiohttp.ClientTimeout(total=5)) as r:
                status = r.status
                await r.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unreachable(f"{self.url} is unreachable ({type(exc).__name__}: {exc or 'no answer'})") from None
        if status != 200:
            raise Unreachable(f"{self.url}/health answered {status}; is this a TableForge server?")

    async def scrape(self, http: aiohttp.ClientSession, attempts: int = 2) -> dict[str, Any]:
        """/metrics parsed, with `took_s` (a busy server answers late: the counters are read when it
        answers). On failure (after `attempts` tries) an empty scrape with `error` saying why, which
        the targets read from this instance report instead of a bare n/a."""
        error = ""
        t = time.perf_counter()
        for attempt in range(attempts):
            try:
                async with http.get(f"{self.url}/metrics", timeout=SCRAPE_TIMEOUT) as r:
                    status, body = r.status, await r.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}{f': {exc}' if str(exc) else ''}"
                if isinstance(exc, TimeoutError):
                    error = f"no answer within {SCRAPE_TIMEOUT.total:g} s"
            else:
                if status == 200:
                    return {**parse_prometheus(body.decode("utf-8", "replace")),
                            "took_s": round(time.perf_counter() - t, 3)}
                error = f"HTTP {status}"
            if attempt + 1 < attempts:
                await asyncio.sleep(0.5)
        return {"hist": {}, "value": {}, "error": f"GET {self.url}/metrics failed {attempts} times ({error})"}

    async def admin_stats(self, http: aiohttp.ClientSession) -> dict[str, Any] | None:
        if not self.admin_token:
            return None
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with http.get(f"{self.url}/api/admin/stats", timeout=aiohttp.ClientTimeout(total=5),
                                headers={"Authorization": f"Bearer {self.admin_token}"}) as r:
                status, raw = r.status, await r.read()
            if status == 200:
                body: dict[str, Any] = orjson.loads(raw)
                return body
        return None

    def find_process(self) -> None:
        """The instance's process, when it runs on this machine (found by its listening port)."""
        if self.meter is not None:
            return
        if self.pid is None and self.local:
            self.pid = pid_listening_on(self.port)
        if self.pid is not None:
            self.meter = TreeMeter(self.pid)

    def sample(self) -> None:
        if self.meter is not None:
            self.meter.sample()

    @property
    def cpu(self) -> list[float]:
        return self.meter.cpu if self.meter else []

    @property
    def rss_mb(self) -> list[float]:
        return self.meter.rss_mb if self.meter else []

    def process_note(self) -> str | None:
        """Why this instance's CPU and memory were not sampled (None when they were)."""
        if self.cpu:
            return None
        if self.meter is not None:
            return f"{self.url}: {self.meter.lost or 'no sample taken (the steady phase ended first)'}"
        if not self.local:
            return f"{self.url} is not on this machine: its process cannot be measured from here"
        return (f"no process this user can see listens on port {self.port} (another user's, or in a "
                "container): its CPU and memory cannot be read")

    def unreadable(self) -> str | None:
        """Why this instance's /metrics deltas over the steady phase mean nothing (None when they do)."""
        for moment, scraped in (("start", self.before), ("end", self.after)):
            if not scraped:
                return f"{self.url}/metrics was not scraped at the {moment} of the steady phase"
            if scraped.get("error"):
                return f"{scraped['error']} at the {moment} of the steady phase"
        started = [s.get("value", {}).get("process_start_time_seconds", {}) for s in (self.before, self.after)]
        if started[0] and started[1] and started[0] != started[1]:
            return f"{self.url} restarted during the steady phase (its process start time changed)"
        before = self.before.get("value", {})
        for name, series in self.after.get("value", {}).items():
            if name.endswith(("_total", "_count")):
                old = before.get(name, {})
                if any(v < old.get(k, 0.0) for k, v in series.items()):
                    return f"{self.url} restarted during the steady phase ({name} went backwards)"
        return None

    # -- deltas over the run
    def hist(self, name: str, match: dict[str, str] | None = None) -> Series:
        if self.unreadable():
            return {"buckets": {}, "sum": 0.0, "count": 0.0}
        return hist_delta(self.before.get("hist", {}).get(name, {}), self.after.get("hist", {}).get(name, {}), match)

    def counter(self, name: str, match: dict[str, str] | None = None) -> float:
        if self.unreadable():
            return 0.0
        return counter_delta(self.before.get("value", {}).get(name, {}), self.after.get("value", {}).get(name, {}),
                             match)

    def has(self, name: str) -> bool:
        return name in self.after.get("hist", {}) or name in self.after.get("value", {})

    def gauge_max(self, name: str) -> float | None:
        values = self.after.get("value", {}).get(name)
        return max(values.values()) if values else None

    def resources(self) -> dict[str, Any]:
        return {"url": self.url, "pid": self.pid, "instance_id": self.instance_id,
                "cpu_pct_median": round(median(self.cpu), 1), "cpu_pct_max": round(max(self.cpu, default=0.0), 1),
                "rss_mb_median": round(median(self.rss_mb), 1), "rss_mb_max": round(max(self.rss_mb, default=0.0), 1),
                "samples": len(self.cpu), "not_measured": self.process_note(),
                "metrics_scrape_s": {"start": self.before.get("took_s"), "end": self.after.get("took_s")}}


def merged(probes: list[ServerProbe], name: str, match: dict[str, str] | None = None) -> Series:
    out: Series = {"buckets": {}, "sum": 0.0, "count": 0.0}
    for p in probes:
        out = add_series(out, p.hist(name, match))
    return out

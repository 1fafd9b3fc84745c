"""What the load generator reads from the servers: health, /metrics before and after, the admin
stats, and CPU and memory of the server processes (psutil, when they run on this machine)."""

from __future__ import annotations

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
    cpu: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    _proc: psutil.Process | None = None

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

    async def scrape(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        try:
            async with http.get(f"{self.url}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as r:
                status, body = r.status, await r.read()
        except (aiohttp.ClientError, TimeoutError):
            return {"hist": {}, "value": {}}
        return parse_prometheus(body.decode("utf-8", "replace")) if status == 200 else {"hist": {}, "value": {}}

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
        if self.pid is None and self.local:
            self.pid = pid_listening_on(self.port)
        if self.pid is not None:
            with contextlib.suppress(psutil.Error):
                self._proc = psutil.Process(self.pid)
                self._proc.cpu_percent(None)

    def sample(self) -> None:
        if self._proc is None:
            return
        try:
            procs = [self._proc, *self._proc.children(recursive=True)]
            cpu = sum(p.cpu_percent(None) for p in procs)
            rss = sum(p.memory_info().rss for p in procs)
        except psutil.Error:
            return
        self.cpu.append(cpu)
        self.rss_mb.append(rss / 2 ** 20)

    # -- deltas over the run
    def hist(self, name: str, match: dict[str, str] | None = None) -> Series:
        return hist_delta(self.before.get("hist", {}).get(name, {}), self.after.get("hist", {}).get(name, {}), match)

    def counter(self, name: str, match: dict[str, str] | None = None) -> float:
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
                "samples": len(self.cpu)}


def merged(probes: list[ServerProbe], name: str, match: dict[str, str] | None = None) -> Series:
    out: Series = {"buckets": {}, "sum": 0.0, "count": 0.0}
    for p in probes:
        out = add_series(out, p.hist(name, match))
    return out


class ClientMeter:
    """The load generator's own cost: CPU of this process and event-loop lag."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.proc.cpu_percent(None)
        self.cpu: list[float] = []
        self.loop_lag_ms: list[float] = []
        self.cores = psutil.cpu_count() or 1
        self.machine_cpu: list[float] = []
        psutil.cpu_percent(None)

    def sample(self, lag_ms: float) -> None:
        self.cpu.append(self.proc.cpu_percent(None))
        self.machine_cpu.append(psutil.cpu_percent(None))
        self.loop_lag_ms.append(lag_ms)

    def summary(self) -> dict[str, Any]:
        return {"cpu_pct_median": round(median(self.cpu), 1), "cpu_pct_max": round(max(self.cpu, default=0.0), 1),
                "loop_lag_ms_median": round(median(self.loop_lag_ms), 1),
                "loop_lag_ms_max": round(max(self.loop_lag_ms, default=0.0), 1),
                "machine_cpu_pct_median": round(median(self.machine_cpu), 1), "cores": self.cores,
                "saturated": median(self.cpu) > 85 or median(self.loop_lag_ms) > 50}


def now() -> float:
    return time.perf_counter()

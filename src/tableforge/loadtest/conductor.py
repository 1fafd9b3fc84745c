"""What the process in charge of a run does around the players, whether they play in it or in
worker processes: check and find the servers, pin them, sample CPU and memory once a second,
scrape /metrics when the steady phase starts and ends, and build the result."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import aiohttp

from tableforge.loadtest.recorder import Recorder
from tableforge.loadtest.report import build_result


class Conductor(Recorder):
    """The probes talk to the servers over a session of their own: on the players' session a scrape
    would queue behind their requests for a pooled connection, and time out when the server is busy."""

    _probe_http: aiohttp.ClientSession | None = None

    @property
    def probe_http(self) -> aiohttp.ClientSession:
        assert self._probe_http is not None, "open_run first"
        return self._probe_http

    async def open_run(self) -> None:
        """Every server answers; the local ones are found (by port) and pinned if asked; this
        process is pinned if asked (before any worker starts: workers inherit its CPUs)."""
        self._probe_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2 * len(self.probes)),
                                                 cookie_jar=aiohttp.DummyCookieJar())
        for probe in self.probes:
            await probe.check(self.probe_http)
        self.pinning.apply_client()
        for probe in self.probes:
            probe.find_process()
            self.pinning.apply_server(probe.url, probe.pid)

    async def close_run(self) -> None:
        """The instances get back the CPUs they had (a load test leaves them as it found them)."""
        self.pinning.restore_servers()
        for probe in self.probes:
            for inst in probe.stats.get("instances", []):
                if probe.pid is not None and inst.get("pid") == probe.pid:
                    probe.instance_id = inst.get("instance_id")
        if self._probe_http is not None:
            await self._probe_http.close()

    async def sample(self, stop: asyncio.Event, own_lag: bool) -> None:
        """Once a second during the steady phase: the client's CPU (all its processes), the
        instances' CPU and RSS, and (`own_lag`: the players run here) this event loop's lag."""
        expected = time.perf_counter() + 1.0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, expected - time.perf_counter()))
            lag = max(0.0, time.perf_counter() - expected) * 1000
            expected = time.perf_counter() + 1.0
            if not self.steady:
                continue
            self.client.sample(lag if own_lag else None)
            for probe in self.probes:
                probe.sample()

    async def _scrape(self) -> list[dict[str, Any]]:
        """/metrics of every server (and the admin stats, kept), at the same moment."""
        scraped = await asyncio.gather(*(p.scrape(self.probe_http) for p in self.probes))
        for probe in self.probes:
            stats = await probe.admin_stats(self.probe_http)
            if stats:
                probe.stats = stats
        return list(scraped)

    async def begin_steady(self, at: float) -> None:
        """At the end of the ramp-up the client's histograms switch over, then the servers' counters
        are read (the baseline of the steady phase: a slow answer moves it later, and the report says
        by how much); the CPU sets are read back."""
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        self.steady = True
        self.steady_started = time.perf_counter()
        for probe, scraped in zip(self.probes, await self._scrape(), strict=True):
            probe.before = scraped
        self.pinning.observe([os.getpid(), *self.client.worker_pids],
                             [(p.url, p.pid) for p in self.probes])

    async def end_steady(self) -> None:
        self.measuring = self.steady = False
        self.steady_seconds = time.perf_counter() - self.steady_started
        for probe, scraped in zip(self.probes, await self._scrape(), strict=True):
            probe.after = scraped

    def result_of(self, integrity: dict[str, int]) -> dict[str, Any]:
        return build_result(self, integrity)

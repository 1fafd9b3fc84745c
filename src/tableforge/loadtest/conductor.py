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
    async def open_run(self, http: aiohttp.ClientSession) -> None:
        """Every server answers; the local ones are found (by port) and pinned if asked; this
        process is pinned if asked (before any worker starts: workers inherit its CPUs)."""
        for probe in self.probes:
            await probe.check(http)
        self.pinning.apply_client()
        for probe in self.probes:
            probe.find_process()
            self.pinning.apply_server(probe.url, probe.pid)

    def close_run(self) -> None:
        """The instances get back the CPUs they had (a load test leaves them as it found them)."""
        self.pinning.restore_servers()
        for probe in self.probes:
            for inst in probe.stats.get("instances", []):
                if probe.pid is not None and inst.get("pid") == probe.pid:
                    probe.instance_id = inst.get("instance_id")

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

    async def _scrape(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        """/metrics of every server (and the admin stats, kept), scraped at the same moment."""
        scraped = []
        for probe in self.probes:
            scraped.append(await probe.scrape(http))
            stats = await probe.admin_stats(http)
            if stats:
                probe.stats = stats
        return scraped

    async def begin_steady(self, http: aiohttp.ClientSession, at: float) -> None:
        """At the end of the ramp-up: the servers' counters as they are now (the steady phase's
        baseline), then the client's histograms switch over; the CPU sets are read back."""
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        for probe, scraped in zip(self.probes, await self._scrape(http), strict=True):
            probe.before = scraped
        self.steady = True
        self.steady_started = time.perf_counter()
        self.pinning.observe([os.getpid(), *self.client.worker_pids],
                             [(p.url, p.pid) for p in self.probes])

    async def end_steady(self, http: aiohttp.ClientSession) -> None:
        self.measuring = self.steady = False
        self.steady_seconds = time.perf_counter() - self.steady_started
        for probe, scraped in zip(self.probes, await self._scrape(http), strict=True):
            probe.after = scraped

    def result_of(self, integrity: dict[str, int]) -> dict[str, Any]:
        return build_result(self, integrity)

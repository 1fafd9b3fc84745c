"""`tableforge cluster` polls its instances every 5 s (its own /metrics scrapes cost the instances CPU
during the load tests they host), and still stops at once on a signal between two polls."""

from __future__ import annotations

import io
from itertools import pairwise
from pathlib import Path

import httpx
from rich.console import Console

from tableforge.loadtest.cluster import REFRESH_SECONDS, ClusterRunner


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _runner(tmp_path: Path) -> tuple[ClusterRunner, FakeClock, list[float]]:
    runner = ClusterRunner(1, 18999, tmp_path, console=Console(file=io.StringIO()))
    clock = FakeClock()
    runner.clock, runner.sleep = clock, clock.sleep
    polls: list[float] = []
    runner.check = runner.migrate = runner.start = lambda *a, **k: None  # type: ignore[method-assign]
    runner.stop = lambda *a, **k: []  # type: ignore[method-assign]
    return runner, clock, polls


def test_the_instances_are_polled_every_five_seconds(tmp_path: Path) -> None:
    runner, clock, polls = _runner(tmp_path)

    def refresh(_http: httpx.Client) -> None:
        polls.append(clock.now)
        if len(polls) == 4:
            runner.stopping = True

    runner.refresh = refresh  # type: ignore[method-assign]
    assert runner.run() == 0
    assert REFRESH_SECONDS == 5.0
    assert [round(b - a, 6) for a, b in pairwise(polls)] == [5.0, 5.0, 5.0]


def test_a_signal_between_two_polls_stops_within_a_step(tmp_path: Path) -> None:
    runner, clock, polls = _runner(tmp_path)
    runner.refresh = lambda _http: polls.append(clock.now)  # type: ignore[method-assign]

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= 1.0:  # SIGTERM arrives 1 s into the first wait
            runner.stopping = True

    runner.sleep = sleep
    assert runner.run() == 0
    assert polls == [0.0]  # no second poll
    assert clock.now < 1.0 + 0.25  # it did not wait out the 5 s

"""Test helpers: a fake clock; waiting and the TCP proxy that cuts Redis off come from tests.support."""

from __future__ import annotations

from tests.support.proxy import TcpProxy
from tests.support.waiting import wait_until

__all__ = ["FakeClock", "TcpProxy", "wait_until"]


class FakeClock:
    """A wall clock the test moves by hand, so expiry tests never sleep."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

"""The drain's pacing (realtime/drain.py) on a virtual clock, and the rebalance plan: when each socket
is closed, how many at once, what happens to sockets that leave by themselves or come back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from tableforge.realtime.drain import CLOSE_SERVICE_RESTART, MAX_TICK, MIN_TICK, close_gradually, due, next_wait
from tableforge.services.rebalance import shed_plan


class VirtualClock:
    """`clock()` and `sleep()` for close_gradually: sleeping moves time forward, nothing waits."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass(eq=False)
class FakeSocket:
    name: str
    clock: VirtualClock
    busy: bool = False
    closed_at: float | None = None
    codes: list[tuple[int, str]] = field(default_factory=list)

    waiting: bool = False  # busy when asked: closes once its message is answered (Connection)

    @property
    def closing(self) -> bool:
        return self.closed_at is not None or self.waiting

    def close_when_idle(self, code: int, reason: str) -> None:
        self.codes.append((code, reason))
        if self.busy:
            self.waiting = True
        else:
            self.closed_at = self.clock.now


def sockets(n: int, clock: VirtualClock) -> list[FakeSocket]:
    return [FakeSocket(f"s{i}", clock) for i in range(n)]


def test_due_rises_linearly_to_every_socket_at_the_window_end() -> None:
    assert [due(10, t, 10.0) for t in (0, 0.99, 1.0, 2.5, 5.0, 9.99, 10.0, 11.0)] == [0, 0, 1, 2, 5, 9, 10, 10]
    assert due(3, 20 / 3, 20.0) == 1  # k * window / n counts as k despite float rounding
    assert due(3, 40 / 3, 20.0) == 2
    assert due(0, 5.0, 10.0) == 0
    assert due(7, 0.0, 0.0) == 7  # no window: all at once


def test_next_wait_aims_at_the_next_due_close_within_the_tick_bounds() -> None:
    assert next_wait(4, 0, 0.0, 2.0) == pytest.approx(0.5)
    assert next_wait(4, 1, 0.6, 2.0) == pytest.approx(0.4)
    assert next_wait(10_000, 3, 0.0, 20.0) == MIN_TICK  # 500 a second: several per tick
    assert next_wait(2, 0, 0.0, 600.0) == MAX_TICK  # a long wait is taken in steps (sockets may leave)


async def test_sockets_close_one_by_one_evenly_over_the_window() -> None:
    clock = VirtualClock()
    socks = sockets(4, clock)
    closed = await close_gradually(lambda: socks, 4, 20.0, "server draining", clock=clock.clock, sleep=clock.sleep)
    assert closed == 4
    offsets = [s.closed_at - 100.0 for s in socks if s.closed_at is not None]
    assert offsets == pytest.approx([5.0, 10.0, 15.0, 20.0], abs=MIN_TICK)
    assert all(s.codes == [(CLOSE_SERVICE_RESTART, "server draining")] for s in socks)


async def test_many_sockets_close_in_small_batches_never_all_at_once() -> None:
    clock = VirtualClock()
    socks = sockets(1000, clock)
    await close_gradually(lambda: socks, 1000, 10.0, "r", clock=clock.clock, sleep=clock.sleep)
    times = [s.closed_at for s in socks]
    assert None not in times
    per_tick: dict[float, int] = {}
    for t in times:
        assert t is not None
        per_tick[round(t, 6)] = per_tick.get(round(t, 6), 0) + 1
    assert max(per_tick.values()) <= 6  # 100 a second at 0.05 s ticks: 5 (6 with rounding)
    assert len(per_tick) >= 190
    assert max(times) - 100.0 == pytest.approx(10.0, abs=MIN_TICK)  # type: ignore[operator]


async def test_a_zero_window_closes_everything_at_once() -> None:
    clock = VirtualClock()
    socks = sockets(5, clock)
    assert await close_gradually(lambda: socks, 5, 0.0, "r", clock=clock.clock, sleep=clock.sleep) == 5
    assert clock.sleeps == []
    assert {s.closed_at for s in socks} == {100.0}


async def test_sockets_that_leave_by_themselves_count_towards_the_drain() -> None:
    clock = VirtualClock()
    socks = sockets(4, clock)
    live = list(socks)

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        if clock.now - 100.0 >= 2.0 and socks[3] in live:
            live.remove(socks[3])  # a player closes the tab 2 s in

    closed = await close_gradually(lambda: live, 4, 20.0, "r", clock=clock.clock, sleep=sleep)
    assert closed == 3
    assert socks[3].closed_at is None  # never closed by the drain
    # the close due at 5 s was the one that left: the drain's first is the one due at 10 s
    offsets = [s.closed_at - 100.0 for s in socks[:3] if s.closed_at is not None]
    assert offsets == pytest.approx([10.0, 15.0, 20.0], abs=MIN_TICK)


async def test_the_drain_closes_in_the_order_given_and_stops_when_none_is_left() -> None:
    clock = VirtualClock()
    socks = sockets(3, clock)
    order = [socks[2], socks[0], socks[1]]
    await close_gradually(lambda: order, 3, 3.0, "r", clock=clock.clock, sleep=clock.sleep)
    assert [s.name for s in sorted(socks, key=lambda s: s.closed_at or 0)] == ["s2", "s0", "s1"]


async def test_a_shed_keeps_the_rest_and_never_closes_more_than_asked() -> None:
    """Sockets that come straight back (a balancer hashing them here again) are not shed over and over."""
    clock = VirtualClock()
    socks = sockets(10, clock)
    live = list(socks)
    extra = iter(range(100))

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        for s in [s for s in live if s.closing]:  # each closed socket reconnects here at once
            live.remove(s)
            live.append(FakeSocket(f"back{next(extra)}", clock))

    closed = await close_gradually(lambda: live, 4, 8.0, "rebalancing", keep=6, clock=clock.clock, sleep=sleep)
    assert closed == 4
    assert sum(1 for s in socks if s.closing) == 4
    assert clock.now - 100.0 <= 8.0 + MIN_TICK


async def test_a_socket_busy_with_a_message_is_asked_once_while_its_close_waits() -> None:
    clock = VirtualClock()
    socks = sockets(3, clock)
    socks[0].busy = True  # still handling a message for the whole drain
    closed = await close_gradually(lambda: socks, 3, 3.0, "r", clock=clock.clock, sleep=clock.sleep)
    assert closed == 3
    assert [len(s.codes) for s in socks] == [1, 1, 1]
    assert socks[0].waiting and socks[0].closed_at is None
    assert [s.closed_at - 100.0 for s in socks[1:] if s.closed_at] == pytest.approx([2.0, 3.0], abs=MIN_TICK)


async def test_the_real_sleep_is_the_default() -> None:
    clock = VirtualClock()
    socks = sockets(2, clock)
    assert await asyncio.wait_for(close_gradually(lambda: socks, 2, 0.1, "r"), 5) == 2


@pytest.mark.parametrize(("counts", "tolerance", "min_sockets", "plan"), [
    ({"a": 90, "b": 10, "c": 20}, 0.2, 10, {"a": 50}),  # mean 40: a sheds down to it
    ({"a": 44, "b": 40, "c": 36}, 0.2, 1, {}),  # within 20 % of the mean
    ({"a": 12, "b": 0}, 0.2, 10, {}),  # 6 over the mean: fewer than min_sockets
    ({"a": 12, "b": 0}, 0.2, 5, {"a": 6}),
    ({"a": 61, "b": 60, "c": 0}, 0.2, 10, {"a": 20, "b": 19}),  # two busy ones; mean 40.33 -> 41
    ({"a": 500}, 0.2, 1, {}),  # alone: nowhere to go
    ({}, 0.2, 1, {}),
])
def test_shed_plan(counts: dict[str, int], tolerance: float, min_sockets: int, plan: dict[str, int]) -> None:
    assert shed_plan(counts, tolerance, min_sockets) == plan

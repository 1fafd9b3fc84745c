"""The in-process parts of the guards, without a server: the memory counters' bound and the
decode gate's bounded wait."""

from __future__ import annotations

import asyncio

import pytest
from tests.support.waiting import wait_until

from tableforge.domain.errors import Unavailable
from tableforge.observability import metrics
from tableforge.realtime.socket_limits import SocketLease, SocketLimits
from tableforge.services.attempts import Counter, MemoryAttemptStore
from tableforge.services.decodes import DecodeGate


async def test_memory_counters_stay_within_their_bound_and_count_evictions() -> None:
    store = MemoryAttemptStore(max_keys=100)
    evicted = metrics.ATTEMPT_KEYS_EVICTED._value.get()
    for i in range(250):
        assert await store.take([Counter(f"k{i}", 3, 60)]) == (0.0, -1)
    assert len(store) == 100
    assert metrics.ATTEMPT_KEYS_EVICTED._value.get() - evicted == 150
    assert metrics.ATTEMPT_KEYS._value.get() == 100


async def test_a_full_key_refuses_without_counting_the_others() -> None:
    store = MemoryAttemptStore(max_keys=100)
    user, address = Counter("user", 2, 60), Counter("address", 10, 60)
    for _ in range(2):
        assert await store.take([user, address]) == (0.0, -1)
    wait, which = await store.take([user, address])
    assert which == 0 and 59 < wait <= 60
    await store.give_back("user")  # a guess that was not a wrong one
    assert await store.take([user, address]) == (0.0, -1)
    await store.clear("user")  # address: 3 taken (the refused guess took nothing)
    assert await store.take([user, Counter("address", 4, 60)]) == (0.0, -1)
    assert (await store.take([Counter("other", 5, 60), Counter("address", 4, 60)]))[1] == 1


def test_socket_leases_are_released_once() -> None:
    limits = SocketLimits(per_user=2, per_address=3)
    first = limits.acquire("u", "a")
    assert isinstance(first, SocketLease) and isinstance(limits.acquire("u", "a"), SocketLease)
    assert limits.acquire("u", "a") == "per_user"
    assert isinstance(limits.acquire("v", "a"), SocketLease)
    assert limits.acquire("w", "a") == "per_address"
    first.release()
    first.release()  # a second close path must not free a second place
    assert limits.open_for_user("u") == 1 and limits.open_for_address("a") == 2


async def test_decode_gate_refuses_after_its_bounded_wait() -> None:
    gate = DecodeGate(limit=1, wait_seconds=0.05)
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.slot():
            await release.wait()

    busy = asyncio.ensure_future(hold())
    await wait_until(lambda: gate.active == 1, what="the first upload to take the slot")
    with pytest.raises(Unavailable) as refused:
        async with gate.slot():
            pass
    assert refused.value.code == "server_busy" and refused.value.headers == {"Retry-After": "5"}
    release.set()
    await busy
    async with gate.slot():  # the slot is free again
        assert gate.active == 1
    assert gate.active == 0

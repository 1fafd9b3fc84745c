"""The maintenance lease on real Redis: one holder at a time; the holder renews; a lease whose
holder stopped renewing passes to another; only the holder can renew or release it; and a holder
that cannot reach Redis stops trusting its lease before anyone else could have it."""

from __future__ import annotations

import time

import redis.asyncio

from tableforge.services.maintenance.lease import ProcessLease
from tableforge.services.maintenance.redis_lease import RedisLease
from tests.support.private_redis import PrivateRedis
from tests.support.waiting import eventually


async def test_one_holder_renewal_and_takeover_after_expiry(client: redis.asyncio.Redis, prefix: str) -> None:
    a = RedisLease(client, prefix, "inst-a", seconds=1.0)
    b = RedisLease(client, prefix, "inst-b", seconds=1.0)
    assert await a.hold() is True and a.held
    assert await b.hold() is False and not b.held
    assert (await b.view()).holder == "inst-a"
    assert await client.get(f"{prefix}maintenance:lease") is not None  # under the test's prefix
    # a renewal pushes the expiry out again (PEXPIRE), b still cannot take it
    # (first let the lease run down, so that the renewal's effect is larger than a clock tick)
    async def ran_down() -> bool:
        return 0 < await client.pttl(a.key) < 700

    await eventually(ran_down, within=5, what="the lease to run down below 700 ms")
    ttl_before = await client.pttl(a.key)
    assert await a.hold() is True
    assert await client.pttl(a.key) > ttl_before
    assert await b.hold() is False
    # a stops renewing (as if killed): within the lease time b gets it, and a can no longer renew
    await eventually(b.hold, within=5, what="b to take the lease after a's ran out")
    assert (await a.view()).holder == "inst-b"
    assert await a.hold() is False and not a.held


async def test_release_frees_the_lease_only_for_its_holder(client: redis.asyncio.Redis, prefix: str) -> None:
    a = RedisLease(client, prefix, "inst-a", seconds=30.0)
    b = RedisLease(client, prefix, "inst-b", seconds=30.0)
    assert await a.hold()
    await b.release()  # not b's: nothing happens
    assert (await b.view()).holder == "inst-a"
    view = await a.view()
    assert view.backend == "redis" and view.expires_in is not None and 0 < view.expires_in <= 30
    await a.release()
    assert not a.held and (await a.view()).holder is None
    assert await b.hold()  # at once, no waiting out the lease time


async def test_a_restarted_process_with_the_same_id_does_not_inherit_the_lease(
        client: redis.asyncio.Redis, prefix: str) -> None:
    old = RedisLease(client, prefix, "inst-a", seconds=30.0)
    new = RedisLease(client, prefix, "inst-a", seconds=30.0)
    assert await old.hold()
    assert await new.hold() is False  # same instance id, another process: it waits like anyone else


async def test_a_holder_cut_off_from_redis_stops_trusting_its_lease_in_time(private_redis: PrivateRedis) -> None:
    client = redis.asyncio.Redis.from_url(private_redis.url, socket_timeout=1, socket_connect_timeout=1)
    try:
        lease = RedisLease(client, "tableforge:", "inst-a", seconds=2.0)
        sent = time.monotonic()
        assert await lease.hold()
        # trusted until the renewal was sent plus the lease time, minus the margin: never longer
        assert lease.valid_until <= sent + 2.0 - lease.margin + 0.01
        private_redis.stop()
        try:
            await lease.hold()
            raise AssertionError("a renewal without Redis must raise")
        except Exception as exc:
            assert "Connection" in type(exc).__name__ or isinstance(exc, OSError | TimeoutError), repr(exc)
        view = await lease.view()
        assert view.holder is None and view.error is not None and "Redis did not answer" in view.error
        await eventually(lambda: _not_held(lease), within=5, what="the lease to stop being trusted")
    finally:
        await client.aclose()


async def _not_held(lease: RedisLease) -> bool:
    return not lease.held


async def test_the_embedded_lease_is_always_this_process() -> None:
    lease = ProcessLease("solo", seconds=30.0)
    assert (await lease.view()).holder is None  # not taken yet (a CLI process never takes it)
    assert await lease.hold() and lease.held
    assert (await lease.view()).holder == "solo"
    await lease.release()
    assert not lease.held

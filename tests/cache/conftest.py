"""Fixtures for the cache tests: the real local Redis (DB 9), a unique key prefix per test.

Without Redis the Redis-backed tests are skipped, except under CI=true where that is a failure.
Cleanup deletes only this test's prefix (SCAN + UNLINK), never the database.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis
import redis.asyncio

from tableforge.cache import Cache, CacheSettings
from tableforge.cache.memory import Clock
from tableforge.cache.redis_tier import glob_escape

REDIS_URL = os.environ.get("TABLEFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def _redis_reachable(url: str) -> str | None:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return repr(exc)
    finally:
        client.close()
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    problem = _redis_reachable(REDIS_URL)
    if problem is not None:
        message = f"Redis is not reachable at {REDIS_URL}: {problem}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: a missing Redis is a failure)")
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain redis-py client, for looking at (and corrupting) what the cache stored."""
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(raw: redis.asyncio.Redis) -> AsyncIterator[str]:
    value = f"tableforge:cache:test-{uuid.uuid4().hex[:12]}:"
    yield value
    batch: list[bytes] = []
    async for key in raw.scan_iter(match=glob_escape(value) + "*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            await raw.unlink(*batch)
            batch.clear()
    if batch:
        await raw.unlink(*batch)


MakeCache = Callable[..., Awaitable[Cache]]


@pytest.fixture
async def make_cache(redis_url: str, prefix: str) -> AsyncIterator[MakeCache]:
    """Started caches sharing this test's Redis prefix (each one is 'an instance')."""
    caches: list[Cache] = []

    async def make(*, clock: Clock = time.time, rand: Callable[[], float] = random.random, **fields: Any) -> Cache:
        """`fields` are CacheSettings fields; clock and rand are the cache's test hooks."""
        fields.setdefault("redis_url", redis_url)
        fields.setdefault("prefix", prefix)
        fields.setdefault("instance_id", f"instance-{len(caches)}-{uuid.uuid4().hex[:6]}")
        cache = Cache(CacheSettings(**fields), clock=clock, rand=rand)
        await cache.start()
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        await cache.close()

"""Fixtures for the cache tests: caches on the suite's one Redis (`redis_url`), under the test's own
key prefix (`prefix`), both from tests/conftest.py."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tableforge.cache import Cache, CacheSettings
from tableforge.cache.memory import Clock

MakeCache = Callable[..., Awaitable[Cache]]


@pytest.fixture
async def make_cache(redis_url: str, prefix: str) -> AsyncIterator[MakeCache]:
    """Started caches sharing this test's Redis prefix (each one is 'an instance')."""
    caches: list[Cache] = []

    async def make(*, clock: Clock = time.time, rand: Callable[[], float] = random.random, **fields: object) -> Cache:
        """`fields` are CacheSettings fields; clock and rand are the cache's test hooks."""
        fields.setdefault("redis_url", redis_url)
        fields.setdefault("prefix", prefix)
        fields.setdefault("instance_id", f"instance-{len(caches)}-{uuid.uuid4().hex[:6]}")
        cache = Cache(CacheSettings(**fields), clock=clock, rand=rand)  # type: ignore[arg-type]
        await cache.start()
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        await cache.close()

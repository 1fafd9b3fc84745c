"""Fixtures for the cache tests: caches on the suite's one Redis (`redis_url`), under the test's own
key prefix (`prefix`), both from tests/conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tableforge.cache import Cache

MakeCache = Callable[..., Awaitable[Cache]]


@pytest.fixture
async def make_cache(redis_url: str, prefix: str) -> AsyncIterator[MakeCache]:
    """Started caches sharing this test's Redis prefix (each one is 'an instance')."""
    caches: list[Cache] = []

    async def make(**options: Any) -> Cache:
        options.setdefault("redis_url", redis_url)
        options.setdefault("prefix", prefix)
        options.setdefault("instance_id", f"instance-{len(caches)}-{uuid.uuid4().hex[:6]}")
        cache = Cache(**options)
        await cache.start()
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        await cache.close()

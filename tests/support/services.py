"""Real PostgreSQL and Redis for tests: present, or a failure under CI, or a skip on a laptop."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import asyncpg
import pytest
import redis
import redis.asyncio

PG_ADMIN_URL = os.environ.get("TABLEFORGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TABLEFORGE_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """asyncio.run in a thread of its own: callers may already be inside an event loop
    (pytest-asyncio, or Playwright's sync API)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


def _missing(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable ({exc}); start it (see README) to run these tests"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_postgres() -> None:
    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        await conn.close()

    try:
        _run(probe())
    except Exception as exc:
        _missing("PostgreSQL", exc)


def require_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except Exception as exc:
        _missing("Redis", exc)


@contextmanager
def temp_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = f"tableforge_test_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def unlink_prefixed(client: redis.asyncio.Redis, prefix: str) -> int:
    """Delete the keys under `prefix` (SCAN + UNLINK in batches, never KEYS, never a whole database)."""
    pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix) + "*"
    batch: list[bytes] = []
    deleted = 0
    async for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += await client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += await client.unlink(*batch)
    return deleted

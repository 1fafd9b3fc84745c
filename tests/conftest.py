"""Shared fixtures: real services, real server processes on loopback ports, and small clients.

Every API test runs twice, on SQLite (embedded mode) and on PostgreSQL. With CI=true a missing
PostgreSQL or Redis fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import redis.asyncio

from tests.support.client import Api
from tests.support.proxy import TcpProxy
from tests.support.server import ServerProcess
from tests.support.services import (
    PG_ADMIN_URL,
    REDIS_URL,
    require_postgres,
    require_redis,
    temp_database,
    unlink_prefixed,
)

BACKENDS = ["sqlite", "postgres"]
ROOT = Path(__file__).resolve().parent.parent


def _shares_fixtures(path: Path, scope: str) -> bool:
    """Whether this file (a test module or a package's conftest.py) defines fixtures of `scope`."""
    return path.is_file() and f'scope="{scope}"' in path.read_text()


@functools.cache
def _work_unit(test_file: str) -> str | None:
    """The tests of one xdist work unit: a package whose conftest.py has package-scoped fixtures (the
    browser, the balancing cluster), or a module with module-scoped ones (its own or its package's);
    None when its tests may each go to any worker."""
    module = ROOT / test_file
    conftest = module.parent / "conftest.py"
    if _shares_fixtures(conftest, "package"):
        return str(module.parent.relative_to(ROOT))
    if _shares_fixtures(module, "module") or _shares_fixtures(conftest, "module"):
        return test_file
    return None


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """The suite runs on pytest-xdist workers (`-n 2`, pyproject's addopts): each test on whichever
    worker is free, except that the tests sharing a module- or package-scoped fixture (a cluster, a
    browser) go together to one worker, which starts it once (split over two, each would start its
    own). xdist's own `--dist loadgroup` would do this from marks, but it cannot rename the tests of
    pytest 9, so the grouping is here. The largest units go first (xdist's loadscope order)."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid.split("::", 1)[0]) or nodeid

    return SharedFixtureScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """pytest-timeout's signal method, plus the stack of every asyncio task: a hung async test
    waits in the event loop's select, so the main thread's stack alone does not say on what."""
    if settings.method != "signal":
        return None

    def expire(signum: int, frame: Any) -> None:
        __tracebackhide__ = True
        try:
            tasks = asyncio.all_tasks()
        except RuntimeError:  # a synchronous test: its own traceback says where it hangs
            tasks = set()
        for task in tasks:
            print(f"--- asyncio task {task.get_name()} (timeout of {item.nodeid}) ---", file=sys.stderr)
            task.print_stack(limit=12, file=sys.stderr)
        pytest.fail(f"Timeout (>{settings.timeout}s) from pytest-timeout.", pytrace=True)

    def cancel() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    item.cancel_timeout = cancel  # type: ignore[attr-defined]  # pytest-timeout's cancel hook calls it
    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    require_postgres()
    with temp_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The one Redis of the whole suite (TABLEFORGE_TEST_REDIS). Tests share it safely through
    `prefix`: every key and channel a test makes is under its own prefix."""
    require_redis()
    return REDIS_URL


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client: the test's own view of Redis (to look at, corrupt or kill connections)."""
    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the shared Redis, for a client of the test's own to cut or freeze."""
    target = urlparse(redis_url)
    value = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await value.start()
    yield value
    await value.stop()


@pytest.fixture
async def prefix(raw: redis.asyncio.Redis) -> AsyncIterator[str]:
    """A key (and channel) prefix of this test's own, under `tableforge:`. Pub/sub channels are global
    to the Redis server, so brokers get it too: tests running in parallel, or other people's servers
    on the same Redis, never hear each other. Cleanup deletes only its keys (SCAN + UNLINK)."""
    value = f"tableforge:test-{uuid.uuid4().hex[:12]}:"
    yield value
    await unlink_prefixed(raw, value)


@pytest.fixture(scope="session", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One embedded-mode server per backend for the whole session."""
    env = {
        "TABLEFORGE_DATA_DIR": str(tmp_path_factory.mktemp(f"data-{request.param}")),
        "TABLEFORGE_MAX_UPLOAD_BYTES": str(1024 * 1024),
        "TABLEFORGE_WS_RATE_PER_SECOND": "200",
        "TABLEFORGE_WS_RATE_BURST": "400",
        # Low guess limits so the tests reach them cheaply; they use their own X-Forwarded-For
        # addresses (the test client is the trusted proxy), so other tests' logins are not counted.
        "TABLEFORGE_TRUSTED_PROXIES": "127.0.0.1",
        "TABLEFORGE_LOGIN_MAX_FAILURES_PER_USER": "5",
        "TABLEFORGE_LOGIN_MAX_FAILURES_PER_ADDRESS": "30",
        "TABLEFORGE_LOGIN_FAILURE_WINDOW": "60",
        "TABLEFORGE_INVITE_MAX_FAILURES_PER_USER": "5",
        "TABLEFORGE_INVITE_MAX_FAILURES_PER_ADDRESS": "30",
        "TABLEFORGE_INVITE_FAILURE_WINDOW": "60",
    }
    if request.param == "postgres":
        env["TABLEFORGE_DATABASE_URL"] = request.getfixturevalue("pg_url")
    proc = ServerProcess(free_port(), env, name=request.param)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[Api]:
    async with Api(server.base_url) as client:
        yield client


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


__all__ = ["PG_ADMIN_URL", "free_port", "os"]

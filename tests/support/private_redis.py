"""A redis-server of the test's own on a free loopback port, to stop and restart at will without
touching the shared Redis (other tests and servers use it). Missing redis-server: a failure under
CI, a skip elsewhere."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from tests.support.cluster import free_port
from tests.support.services import IN_CI
from tests.support.waiting import poll_until


class PrivateRedis:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        if shutil.which("redis-server") is None:
            if IN_CI:
                pytest.fail("redis-server is needed for this test")
            pytest.skip("redis-server is not installed")
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again, empty) on the same port, and wait until it answers."""
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            poll_until(answers, 10, f"redis-server on port {self.port}", poll=0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """A hard stop (SIGKILL): what a crashed or restarted Redis looks like to its clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def keys(self) -> list[bytes]:
        client = redis.Redis(port=self.port)
        try:
            return list(client.scan_iter(match="tableforge:*", count=1000))
        finally:
            client.close()

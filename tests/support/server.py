"""A real `tableforge serve` process on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.waiting import poll_until


class ServerProcess:
    def __init__(self, port: int, env: dict[str, str], name: str = "server", args: list[str] | None = None) -> None:
        self.port = port
        self.env = env
        self.name = name
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(env.get("TABLEFORGE_DATA_DIR", "/tmp")) / "logs" / f"server-{port}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 60.0) -> None:  # as wait_healthy: a bound for a loaded 2-core machine
        self.start_async()
        self.wait_healthy(timeout)

    def start_async(self) -> None:
        """Launch the process without waiting for it (see `wait_healthy`)."""
        # SIGTERM stops at once unless a test asks for a drain (tests/balancing): a drain's notice and
        # window would slow every other test's teardown.
        env = {**os.environ, "TABLEFORGE_LOG_JSON": "true", "TABLEFORGE_LOG_LEVEL": "INFO",
               "TABLEFORGE_DRAIN_NOTICE_SECONDS": "0", "TABLEFORGE_DRAIN_SECONDS": "0", **self.env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tableforge", "serve", "--port", str(self.port), *self.args],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, timeout: float = 60.0) -> None:  # a bound for a loaded 2-core machine
        proc = self.proc
        assert proc is not None

        def healthy() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {proc.returncode}:\n{self.log()}")
            try:
                return httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            poll_until(healthy, timeout, f"{self.name} to answer /health")
        except AssertionError:
            self.stop()
            raise RuntimeError(f"{self.name} did not become healthy:\n{self.log()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

"""K real scale-out instances (PostgreSQL + Redis) on loopback ports, isolated by a namespace."""

from __future__ import annotations

import uuid
from pathlib import Path

import redis

from tests.support.server import ServerProcess


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, size: int, pg_url: str, redis_url: str, data_dir: Path, **extra_env: str) -> None:
        self.namespace = f"t{uuid.uuid4().hex[:10]}"
        self.env = {
            "TABLEFORGE_DATABASE_URL": pg_url,
            "TABLEFORGE_REDIS_URL": redis_url,
            "TABLEFORGE_REDIS_NAMESPACE": self.namespace,
            "TABLEFORGE_DATA_DIR": str(data_dir),  # shared: uploaded assets are served by any instance
            "TABLEFORGE_INSTANCE_HEARTBEAT_SECONDS": "1",
            "TABLEFORGE_INSTANCE_TTL_SECONDS": "3",
            "TABLEFORGE_WS_RATE_PER_SECOND": "500",
            "TABLEFORGE_WS_RATE_BURST": "1000",
            **extra_env,
        }
        self.servers = [self._server(i) for i in range(size)]

    def _server(self, index: int) -> ServerProcess:
        env = {**self.env, "TABLEFORGE_INSTANCE_ID": f"{self.namespace}-{index}"}
        return ServerProcess(free_port(), env, name=f"instance-{index}")

    def start(self) -> Cluster:
        # The first one migrates and seeds alone; the rest start together (advisory locks make that safe too).
        try:
            self.servers[0].start()
            for server in self.servers[1:]:
                server.start_async()
            for server in self.servers[1:]:
                server.wait_healthy()
        except BaseException:
            self.stop()  # the caller's finally never runs when start fails: leave no instance behind
            raise
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self._forget_namespace()

    def _forget_namespace(self) -> None:
        """Delete what the instances left under their namespace in the shared Redis (the cache's
        generation counters have no TTL, so every run would leave some behind): SCAN + UNLINK in
        batches. Nothing to do if that Redis is gone (a fault test's own server)."""
        client = redis.Redis.from_url(self.env["TABLEFORGE_REDIS_URL"], socket_connect_timeout=1, socket_timeout=5)
        try:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"tableforge:{self.namespace}:*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
        except redis.RedisError:
            pass
        finally:
            client.close()

    def instance_id(self, index: int) -> str:
        return f"{self.namespace}-{index}"

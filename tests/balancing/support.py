"""A real HAProxy (Debian's) in front of real instances, configured from the shipped files, and
players that keep moving through it while instances drain, shed or die.

The balancer's configuration is the shipped file's `global`, `resolvers`, `defaults` and `backend
tableforge` sections, verbatim but for the health-check interval (shortened so a test sees an
instance go down in a second rather than four); its TLS frontends are replaced by one plain-HTTP
frontend on a loopback port, which names the server that answered in `X-TableForge-Server` (a test's
way to see where each socket landed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from tests.support.cluster import Cluster, free_port
from tests.support.haproxy import HAProxy

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "haproxy"
LEASTCONN = DEPLOY / "haproxy.cfg"  # the default recipe (the deploy branch's)
ROOMS = DEPLOY / "haproxy-rooms.cfg"  # room affinity
SERVER_HEADER = "X-TableForge-Server"


def sections(text: str) -> list[tuple[str, str]]:
    """Top-level sections of an HAProxy file: (header line, its text up to the next header). The
    comments before the first section are left out."""
    out: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if line.strip() and not line[0].isspace() and not line.startswith("#"):
            out.append([line.strip(), line])
        elif out:
            out[-1][1] += line
    return [(header, body) for header, body in out]


def backend_of(path: Path) -> str:
    [backend] = [body for header, body in sections(path.read_text()) if header == "backend tableforge"]
    return backend


def leastconn_backend() -> str:
    """The default recipe's backend; before the deploy branch is merged, the same backend as the
    room-affinity file's with its balancing lines made least-connections."""
    if LEASTCONN.exists():
        return backend_of(LEASTCONN)
    text = backend_of(ROOMS)
    text = re.sub(r"\n    balance url_param room\n    hash-type consistent\n", "\n    balance leastconn\n", text)
    assert "balance leastconn" in text
    return text


def balancer_config(backend: str, port: int, check_interval: str = "300ms") -> str:
    """global + resolvers + defaults of the shipped file, the given backend, one plain frontend."""
    keep = [body for header, body in sections(ROOMS.read_text())
            if header == "global" or header.startswith(("resolvers ", "defaults"))]
    if check_interval != "2s":
        # quicker checks, each still allowed the time a loaded machine may take to answer /ready
        backend = backend.replace("inter 2s", f"inter {check_interval}").replace(
            "\n    option httpchk\n", "\n    timeout check 3s\n    option httpchk\n")
        assert "timeout check 3s" in backend
    frontend = (f"frontend test\n    bind 127.0.0.1:{port}\n"
                f"    http-response set-header {SERVER_HEADER} %s\n    default_backend tableforge\n\n")
    return "".join(keep) + frontend + backend


def start_balancer(cluster: Cluster, backend: str, workdir: Path, check_interval: str = "300ms"
                   ) -> tuple[HAProxy, str]:
    """HAProxy in front of the cluster's instances (up to three); returns it and its base URL."""
    port = free_port()
    n = len(cluster.servers)
    # fewer instances than the file names: their server lines go (the defaults point at ports 800x)
    backend = "".join(line for line in backend.splitlines(keepends=True)
                      if not re.match(rf"\s+server tf([{n + 1}-9])\b", line))
    env = {f"LB_SERVER_{i + 1}": f"127.0.0.1:{s.port}" for i, s in enumerate(cluster.servers)}
    proxy = HAProxy(balancer_config(backend, port, check_interval), workdir, ports=[port], env=env)
    proxy.env["LB_ADMIN_SOCKET"] = str(proxy.socket_dir / "lb-admin-2.sock")
    proxy.start()
    for i in range(len(cluster.servers)):
        proxy.wait_state("tableforge", f"tf{i + 1}", "UP")
    return proxy, f"http://127.0.0.1:{port}"


def server_names(cluster: Cluster) -> dict[str, int]:
    """HAProxy's server name -> index in the cluster."""
    return {f"tf{i + 1}": i for i in range(len(cluster.servers))}


# -- sockets through the balancer ---------------------------------------------------------------------
async def open_socket(base_url: str, token: str, room_id: str | None) -> tuple[websockets.ClientConnection, str]:
    """A socket through the balancer (with `?room=`) and the name of the server that took it."""
    url = base_url.replace("http://", "ws://") + "/ws" + (f"?room={room_id}" if room_id else "")
    sock = await websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None,
                                    open_timeout=20)
    assert sock.response is not None
    return sock, sock.response.headers[SERVER_HEADER]


async def admin_stats(base_url: str, admin_token: str) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{base_url}/api/admin/stats", headers={"Authorization": f"Bearer {admin_token}"})
    assert r.status_code == 200, r.text
    return {i["instance_id"]: i for i in r.json()["instances"]}


async def scrape(base_url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        return (await http.get(f"{base_url}/metrics")).text


@dataclass
class MovingPlayer:
    """Moves its own token again and again through the balancer, as a careful client would: one move
    at a time; when the socket closes it reconnects (through the balancer), rejoins with `since` and
    sends again the move that got no answer. Records every room version it learns of."""

    base_url: str
    token: str
    room_id: str
    token_id: str
    y: float
    x: float = 0.0
    first_version: int | None = None
    versions: set[int] = field(default_factory=set)
    covered: list[tuple[int, int]] = field(default_factory=list)  # (after, upto] brought by a snapshot
    last_acked: tuple[float, float] | None = None
    acked: int = 0
    reconnects: int = 0
    close_codes: list[int] = field(default_factory=list)
    close_reasons: list[str] = field(default_factory=list)
    servers: list[str] = field(default_factory=list)  # where each of its sockets landed, in order
    errors: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _open: tuple[websockets.ClientConnection, asyncio.Task[None]] | None = None

    @property
    def last_version(self) -> int:
        """The `since` of a rejoin: the highest version up to which it has seen every one. Not the
        highest seen: the ack of its own move can overtake another instance's event still on its
        way, and a rejoin after that one would skip the event."""
        seen = set(self.versions)
        for after, upto in self.covered:
            seen.update(range(after + 1, upto + 1))
        version = self.first_version or 0
        while version + 1 in seen:
            version += 1
        return version

    async def _connect(self) -> tuple[websockets.ClientConnection, asyncio.Task[None], dict[int, asyncio.Future[Any]]]:
        for attempt in range(100):
            try:
                sock, server = await open_socket(self.base_url, self.token, self.room_id)
                break
            except (OSError, websockets.InvalidStatus, websockets.InvalidHandshake, TimeoutError):
                await asyncio.sleep(min(0.05 * 2 ** attempt, 0.5))  # refused while it drains: try again
        else:
            raise AssertionError("could not reconnect through the balancer")
        self.servers.append(server)
        futures: dict[int, asyncio.Future[Any]] = {}
        reader = asyncio.ensure_future(self._read(sock, futures))
        join: dict[str, Any] = {"room_id": self.room_id}
        if self.first_version is not None:
            join["since"] = self.last_version
        ack = await self._request(sock, futures, "join", **join)
        assert ack is not None and ack["type"] == "ack", ack
        if self.first_version is None:
            self.first_version = int(ack["version"])
        elif "events" in ack:
            self.versions.update(int(e["version"]) for e in ack["events"])
        else:
            self.covered.append((join["since"], int(ack["version"])))
        return sock, reader, futures

    async def _read(self, sock: websockets.ClientConnection, futures: dict[int, asyncio.Future[Any]]) -> None:
        try:
            async for raw in sock:
                msg = json.loads(raw)
                if msg.get("type") in ("ack", "error") and msg.get("id") in futures:
                    fut = futures.pop(msg["id"])
                    if not fut.done():
                        fut.set_result(msg)
                elif msg.get("room_id") == self.room_id and isinstance(msg.get("version"), int):
                    self.versions.add(msg["version"])
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_codes.append(sock.close_code or 1006)
            self.close_reasons.append(sock.close_reason or "")
            for fut in futures.values():
                if not fut.done():
                    fut.set_result(None)  # no answer: the socket closed first

    async def _request(self, sock: websockets.ClientConnection, futures: dict[int, asyncio.Future[Any]],
                       mtype: str, **fields: Any) -> dict[str, Any] | None:
        msg_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        futures[msg_id] = fut
        try:
            await sock.send(json.dumps({"type": mtype, "id": msg_id, **fields}))
        except websockets.ConnectionClosed:
            futures.pop(msg_id, None)
            return None
        result: dict[str, Any] | None = await asyncio.wait_for(fut, 30)
        return result

    async def play(self, stop: asyncio.Event, pause: float = 0.02) -> None:
        """Move until `stop`; the socket stays open (see `finish`) so the final version can be read first."""
        sock, reader, futures = await self._connect()
        self._open = (sock, reader)
        pending: tuple[float, float] | None = None
        while not stop.is_set():
            if pending is None:
                self.x += 1
                pending = (self.x, self.y)
            reply = await self._request(sock, futures, "token.move", room_id=self.room_id,
                                        token_id=self.token_id, x=pending[0], y=pending[1])
            if reply is None:  # closed before the answer: reconnect, rejoin, send it again
                await reader
                self.reconnects += 1
                sock, reader, futures = await self._connect()
                self._open = (sock, reader)
                continue
            if reply["type"] == "error":
                self.errors.append(reply)
            else:
                self.versions.add(int(reply["version"]))
                self.last_acked = pending
                self.acked += 1
            pending = None
            await asyncio.sleep(pause)

    async def finish(self) -> None:
        if self._open is not None:
            sock, reader = self._open
            with contextlib.suppress(Exception):
                await sock.close()
            reader.cancel()
            self._open = None

    def missing(self, final_version: int) -> list[int]:
        """Room versions after its first join, up to `final_version`, that never reached it."""
        assert self.first_version is not None
        seen = set(self.versions)
        for after, upto in self.covered:
            seen.update(range(after + 1, upto + 1))
        return [v for v in range(self.first_version + 1, final_version + 1) if v not in seen]

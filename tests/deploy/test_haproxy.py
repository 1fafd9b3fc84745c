"""The shipped HAProxy configuration (deploy/haproxy/haproxy.cfg), run by Debian's haproxy with TLS in front
of three real scale-out instances on loopback: the file itself, only its LB_* variables set.

HTTP and WebSockets go through it (TLS terminated, the forwarded headers believed by the instances),
sockets spread by least connections, the upload limit is refused at the proxy, /metrics is not public,
and the /ready health checks take out an instance that lost its database (the port still answers)
and one that stopped, while every request through the proxy keeps succeeding on the others.
With CI=true a missing haproxy or openssl fails (run .ci/haproxy-deps); otherwise these tests skip.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import free_port
from tests.support.client import Api, Ws
from tests.support.cluster import Cluster
from tests.support.haproxy import HAProxy, require_haproxy, self_signed_pem
from tests.support.metrics import sample
from tests.support.proxy import TcpProxy
from tests.support.waiting import eventually

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"
BACKEND = "tableforge"


@dataclass
class Stack:
    cluster: Cluster
    lb: HAProxy
    pg_proxy: TcpProxy  # instance 3 reaches PostgreSQL only through this
    url: str  # https://127.0.0.1:<port>
    http_port: int
    stats_port: int
    tls: ssl.SSLContext

    def api(self) -> Api:
        api = Api(self.url)
        api.http = httpx.AsyncClient(base_url=self.url, timeout=30, verify=self.tls)
        return api

    async def ws(self, token: str) -> Ws:
        return await Ws.connect(self.url.replace("https://", "wss://") + "/ws", token, ssl=self.tls)

    def instance_ids(self) -> list[str]:
        return [self.cluster.instance_id(i) for i in range(len(self.cluster.servers))]


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.fixture(scope="module")
async def stack(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    require_haproxy()
    work = tmp_path_factory.mktemp("haproxy")
    pg = urlsplit(pg_url)
    pg_proxy = TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432)
    await pg_proxy.start()
    cluster = Cluster(3, pg_url, redis_url, work / "data", TABLEFORGE_TRUSTED_PROXIES="127.0.0.1")
    cluster.servers[2].env["TABLEFORGE_DATABASE_URL"] = _via(pg_url, pg_proxy.port)
    # In a thread: the proxy forwards on this event loop while the instances start.
    await asyncio.to_thread(cluster.start)
    pem, cert = self_signed_pem(work / "tls")
    https_port, http_port, stats_port = free_port(), free_port(), free_port()
    env = {
        "LB_HTTPS_BIND": f"127.0.0.1:{https_port}",
        "LB_HTTP_BIND": f"127.0.0.1:{http_port}",
        "LB_STATS_BIND": f"127.0.0.1:{stats_port}",
        "LB_CERT": str(pem),
        **{f"LB_SERVER_{i + 1}": f"127.0.0.1:{s.port}" for i, s in enumerate(cluster.servers)},
    }
    lb = HAProxy(SHIPPED.read_text(), work / "lb", [https_port, http_port, stats_port], env=env)
    lb.env["LB_ADMIN_SOCKET"] = str(lb.socket_dir / "shipped-admin.sock")
    try:
        await asyncio.to_thread(lb.start)
        for i in range(3):
            await asyncio.to_thread(lb.wait_state, BACKEND, f"tf{i + 1}", "UP")
        yield Stack(cluster, lb, pg_proxy, f"https://127.0.0.1:{https_port}", http_port, stats_port,
                    ssl.create_default_context(cafile=str(cert)))
    finally:
        # In a thread: instance 3 reaches PostgreSQL through the proxy on this event loop, and its
        # shutdown (closing its pool) would otherwise wait for the loop until it was killed.
        await asyncio.to_thread(lb.stop)
        await asyncio.to_thread(cluster.stop)
        await pg_proxy.stop()


async def test_http_goes_through_tls_with_the_forwarded_headers(stack: Stack) -> None:
    async with stack.api() as api:
        health = await api.http.get("/health")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert health.headers["strict-transport-security"] == "max-age=31536000"
        assert health.http_version == "HTTP/1.1"
        catalog = await api.http.get("/api/systems", params={"limit": 5})
        assert catalog.status_code == 200 and catalog.json()["limit"] == 5
        # The instances believe X-Forwarded-Proto from the proxy: the session cookie is Secure.
        name = f"tls{free_port()}"
        made = await api.http.post("/api/auth/register", json={"username": name, "password": "correct horse"})
        assert made.status_code == 201, made.text
        assert "secure" in made.headers["set-cookie"].lower()
    async with httpx.AsyncClient(base_url=stack.cluster.servers[0].base_url) as direct:
        plain = await direct.post("/api/auth/login", json={"username": name, "password": "correct horse"})
        assert plain.status_code == 200 and "secure" not in plain.headers["set-cookie"].lower()
        assert (await direct.get("/metrics")).status_code == 200
    async with httpx.AsyncClient() as client:
        redirect = await client.get(f"http://127.0.0.1:{stack.http_port}/api/systems?page=2")
        assert redirect.status_code == 301
        assert redirect.headers["location"] == f"https://127.0.0.1:{stack.http_port}/api/systems?page=2"
    # /metrics is for Prometheus (it scrapes each instance), never served to the internet.
    async with stack.api() as api:
        hidden = await api.http.get("/metrics")
        assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
    async with httpx.AsyncClient() as client:
        exporter = await client.get(f"http://127.0.0.1:{stack.stats_port}/metrics")
        assert exporter.status_code == 200
        assert 'haproxy_backend_active_servers{proxy="tableforge"} 3' in exporter.text


async def test_the_upload_limit_is_refused_at_the_proxy(stack: Stack) -> None:
    async with stack.api() as api:
        gm = await api.register("up")
        room = await api.room(gm)
        small = await api.upload(gm, room["id"])
        assert small.status_code == 201, small.text  # a multipart upload goes through
    # A declared body over the limit is answered at once, before a byte of it is sent.
    host, port = "127.0.0.1", int(stack.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection(host, port, ssl=stack.tls, server_hostname=host)
    try:
        writer.write((f"POST /api/rooms/{room['id']}/assets HTTP/1.1\r\nHost: {host}\r\n"
                      f"Authorization: Bearer {gm.token}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                      f"Content-Length: {20 * 1024 * 1024 + 1024 * 1024 + 1}\r\n\r\n").encode())
        await writer.drain()
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
        assert head.startswith("HTTP/1.1 413"), head
        length = int(next(line.split(":", 1)[1] for line in head.split("\r\n")
                          if line.lower().startswith("content-length")))
        body = json.loads(await asyncio.wait_for(reader.readexactly(length), 10))
        assert body["error"]["code"] == "too_large"
    finally:
        writer.close()


async def _connections(stack: Stack) -> list[float]:
    counts = []
    for server in stack.cluster.servers:
        async with httpx.AsyncClient(base_url=server.base_url) as direct:
            counts.append(await sample(direct, "tableforge_ws_connections"))
    return counts


async def test_websockets_spread_by_least_connections_and_get_events_through_it(stack: Stack) -> None:
    async with stack.api() as api:
        gm, player = await api.register("gm"), await api.register("pl")
        room = await api.room(gm, player)
        asset = await api.asset(gm, room["id"])
        before = await _connections(stack)
        gm_ws, player_ws = await stack.ws(gm.token), await stack.ws(player.token)
        try:
            async def both_counted() -> bool:
                return sum(await _connections(stack)) - sum(before) == 2

            await eventually(both_counted, 20, "both sockets counted by their instances")
            after = await _connections(stack)
            # Least connections: the second socket went to an instance without the first one.
            assert sorted(a - b for a, b in zip(after, before, strict=True)) == [0, 1, 1]
            assert (await gm_ws.request("join", room_id=room["id"]))["type"] == "ack"
            assert (await player_ws.request("join", room_id=room["id"]))["type"] == "ack"
            assert (await gm_ws.next_event("player.joined"))["user"]["id"] == player.id
            added = await gm_ws.request("token.add", room_id=room["id"], asset_id=asset["id"], x=1, y=1)
            token_id = added["token"]["id"]
            assert (await player_ws.next_event("token.added"))["token"]["id"] == token_id
            moved = await gm_ws.request("token.move", room_id=room["id"], token_id=token_id, x=7, y=9)
            event = await player_ws.next_event("token.moved")
            assert (event["token_id"], event["x"], event["y"], event["version"]) == (token_id, 7, 9, moved["version"])
            said = await player_ws.request("chat.send", room_id=room["id"], text="through the balancer")
            chat = await gm_ws.next_event("chat.message")
            assert chat["message"]["text"] == "through the balancer" and chat["version"] == said["version"]
        finally:
            await gm_ws.close()
            await player_ws.close()


async def _served_by(stack: Stack, api: Api, count: int) -> set[str]:
    """Which instances answer `count` requests through the proxy (each must succeed)."""
    seen = set()
    for _ in range(count):
        r = await api.http.get("/ready")
        assert r.status_code == 200, r.text
        seen.add(r.json()["instance_id"])
    return seen


async def test_ready_checks_take_out_an_instance_without_its_database_and_a_stopped_one(stack: Stack) -> None:
    ids = stack.instance_ids()
    async with stack.api() as api:
        # Instance 3 loses PostgreSQL: its port still answers, but /ready says 503 and the check sees it.
        await stack.pg_proxy.stop()
        try:
            async with httpx.AsyncClient(base_url=stack.cluster.servers[2].base_url, timeout=30) as direct:
                async def down() -> bool:
                    return (await direct.get("/ready")).status_code == 503

                await eventually(down, 30, "instance 3's /ready to say 503")
            await asyncio.to_thread(stack.lb.wait_state, BACKEND, "tf3", "DOWN")
            assert stack.lb.server_states()[(BACKEND, "tf1")] == "UP"
            assert await _served_by(stack, api, 12) <= {ids[0], ids[1]}
        finally:
            await stack.pg_proxy.start()
        await asyncio.to_thread(stack.lb.wait_state, BACKEND, "tf3", "UP")

        # Instance 1 stops (SIGTERM): its sockets are told to reconnect (1012), and they reconnect
        # through the proxy to the others; no request through the proxy fails.
        gm = await api.register("ha")
        sock = await stack.ws(gm.token)
        await asyncio.to_thread(stack.cluster.servers[0].stop)
        try:
            if (code := await sock.closed_with(3)) is not None:
                assert code == 1012  # it was on the stopped instance
            again = await stack.ws(gm.token)
            assert (await again.request("ping"))["type"] == "pong"
            await again.close()
            await sock.close()
            assert ids[0] not in await _served_by(stack, api, 12)  # retried elsewhere, then checked out
            await asyncio.to_thread(stack.lb.wait_state, BACKEND, "tf1", "DOWN")
            assert await _served_by(stack, api, 12) <= {ids[1], ids[2]}
        finally:
            await asyncio.to_thread(stack.cluster.servers[0].start)
        await asyncio.to_thread(stack.lb.wait_state, BACKEND, "tf1", "UP")

        async def back() -> bool:
            return ids[0] in await _served_by(stack, api, 6)

        await eventually(back, 30, "the restarted instance to serve through the proxy again")

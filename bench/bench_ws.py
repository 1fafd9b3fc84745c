"""WebSocket play benchmark: many players moving tokens in many rooms against a real server process.

Run: .venv/bin/python bench/bench_ws.py --players 200 --rooms 40 --duration 20
         [--backend sqlite|postgres] [--preview-rate 0] [--json FILE]

It starts `python -m tableforge serve` on a free 127.0.0.1 port with a fresh data dir (and, for
`--backend postgres`, a fresh database created with asyncpg and dropped at the end), registers the
players over HTTP, makes rooms (first player of each is the GM), uploads one PNG per room, opens one
socket per player, joins, adds one token each, then for `--duration` seconds every player commits
one `token.move` per second (random phase) plus `--preview-rate` preview moves per second.

Measured: ack latency (send -> ack); delivery latency of `token.moved` / `token.moving` to the other
members, both from the event's server `ts` and from the sender's send time; deliveries per second;
lost / duplicate / out-of-order room versions per socket (checked against the final room version);
errors; server CPU% and RSS (psutil, 1 s samples); client CPU% (a client near 100% of one core is
the bottleneck, not the server); client send lag (how late the scheduled sends went out); and the
server's own `tableforge_ws_handle_seconds` / `tableforge_db_transaction_seconds` histograms over the
measured phase. Bounded in count and time; the server and database are cleaned up on any exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from hdrh.histogram import HdrHistogram
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HTTP_CONCURRENCY = 20
WS_CONNECT_CONCURRENCY = 50
console = Console(width=shutil.get_terminal_size((150, 40)).columns)


# ---------------------------------------------------------------- small helpers

def tiny_png(size: int = 32) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes((x * 7 % 256, 80, 160)) * size for x in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_hist() -> HdrHistogram:
    return HdrHistogram(1, 600_000_000, 3)  # microseconds, up to 10 min


def record_ms(hist: HdrHistogram, ms: float) -> None:
    hist.record_value(max(1, min(600_000_000, int(ms * 1000))))


def summary(hist: HdrHistogram) -> dict[str, float]:
    if hist.get_total_count() == 0:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    return {"n": hist.get_total_count(),
            **{f"p{q}": hist.get_value_at_percentile(q) / 1000 for q in (50, 95, 99)},
            "max": hist.get_max_value() / 1000}


def median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2] if s else 0.0


# ---------------------------------------------------------------- server process

@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    samples_cpu: list[float] = field(default_factory=list)
    samples_rss: list[float] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def start_server(data_dir: Path, database_url: str | None) -> Server:
    port = free_port()
    env = {**os.environ, "TABLEFORGE_DATA_DIR": str(data_dir), "TABLEFORGE_LOG_LEVEL": "WARNING",
           "TABLEFORGE_WS_RATE_PER_SECOND": "200", "TABLEFORGE_WS_MAX_PER_ADDRESS": "1000000",
           "TABLEFORGE_WS_RATE_BURST": "400"}
    env.pop("TABLEFORGE_REDIS_URL", None)
    env.pop("TABLEFORGE_DATABASE_URL", None)
    if database_url:
        env["TABLEFORGE_DATABASE_URL"] = database_url
    log_path = data_dir / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "tableforge", "serve", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return Server(proc, port, log_path)


async def wait_healthy(server: Server, http: httpx.AsyncClient, wait_s: float = 60) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get("/health", timeout=2)).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("server did not become healthy in time")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=5)


async def create_database(name: str | None = None) -> tuple[str, str]:
    """A fresh database for one run (dropped by `drop_database`); returns its name and URL."""
    import asyncpg

    name = name or f"tableforge_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, f"postgresql://postgres@127.0.0.1:5432/{name}"


async def drop_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


REPORTED_HISTOGRAMS = ("tableforge_ws_handle_seconds", "tableforge_db_transaction_seconds")


def parse_histograms(text: str, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """{metric{type=…}: {"buckets": {le: count}, "sum": s, "count": n}} for the named histograms,
    read with prometheus_client's own parser of the exposition format."""
    out: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in names:
            continue
        for sample in family.samples:
            key = family.name + (f"{{type={sample.labels['type']}}}" if "type" in sample.labels else "")
            entry = out.setdefault(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
            if sample.name.endswith("_bucket"):
                le = sample.labels["le"]
                entry["buckets"][le] = entry["buckets"].get(le, 0.0) + sample.value
            elif sample.name.endswith("_sum"):
                entry["sum"] += sample.value
            elif sample.name.endswith("_count"):
                entry["count"] += sample.value
    return out


async def scrape_metrics(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    try:
        text = (await http.get("/metrics", timeout=10)).text
    except httpx.HTTPError:
        return {}
    return parse_histograms(text, REPORTED_HISTOGRAMS)


def metrics_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per series over the measured phase: count, mean and bucket-interpolated p50/p95/p99 (ms)."""
    result = {}
    for key, a in after.items():
        b = before.get(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
        count = a["count"] - b["count"]
        if count <= 0:
            continue
        bounds = sorted(((float("inf") if le == "+Inf" else float(le)), c - b["buckets"].get(le, 0.0))
                        for le, c in a["buckets"].items())

        def quantile(q: float, bounds: list[tuple[float, float]] = bounds, count: float = count) -> float:
            target, prev_le, prev_c = q * count, 0.0, 0.0
            for le, c in bounds:
                if c >= target:
                    if le == float("inf"):
                        return prev_le * 1000
                    frac = (target - prev_c) / (c - prev_c) if c > prev_c else 1.0
                    return (prev_le + (le - prev_le) * frac) * 1000
                prev_le, prev_c = le, c
            return prev_le * 1000

        result[key] = {"count": count, "mean_ms": (a["sum"] - b["sum"]) / count * 1000,
                       "p50_ms": quantile(0.5), "p95_ms": quantile(0.95), "p99_ms": quantile(0.99)}
    return result


# ---------------------------------------------------------------- players

@dataclass
class Player:
    index: int
    username: str
    room: int
    token: str = ""
    user_id: str = ""
    ws: ClientConnection | None = None
    token_id: str = ""
    join_version: int = 0
    join_ack_id: int = 0
    seen: dict[str, list[int]] = field(default_factory=dict)  # room_id -> versions (events + own acks)
    sent: dict[float, float] = field(default_factory=dict)  # x -> perf_counter at send (own token)
    pending: dict[int, tuple[float, str]] = field(default_factory=dict)  # msg id -> (t, kind)
    futures: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    next_id: int = 0
    moves: int = 0
    reader: asyncio.Task[None] | None = None


class Bench:
    def __init__(self, args: argparse.Namespace, server: Server, http: httpx.AsyncClient) -> None:
        self.args = args
        self.server = server
        self.http = http
        n = args.players
        tag = uuid.uuid4().hex[:6]
        self.players = [Player(i, f"b{tag}_{i}", i % args.rooms) for i in range(n)]
        self.rooms: list[dict[str, Any]] = [{} for _ in range(args.rooms)]
        self.by_token: dict[str, Player] = {}
        self.measuring = False
        self.ack_lat = new_hist()
        self.moved_ts = new_hist()
        self.moved_send = new_hist()
        self.moving_ts = new_hist()
        self.moving_send = new_hist()
        self.send_lag = new_hist()
        self.delivered_moved = 0
        self.delivered_moving = 0
        self.events_other = 0
        self.acks = 0
        self.moves_sent = 0
        self.previews_sent = 0
        self.errors: dict[str, int] = {}
        self.reordered = 0
        self.disconnects = 0
        self.client_cpu: list[float] = []
        self.setup_failures: list[str] = []

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    # -- HTTP setup
    async def setup_http(self) -> None:
        sem = asyncio.Semaphore(HTTP_CONCURRENCY)

        async def call(method: str, path: str, player: Player | None = None, **kw: Any) -> dict[str, Any]:
            headers = {"Authorization": f"Bearer {player.token}"} if player else {}
            for attempt in range(3):  # a 5xx is a server bug: counted and reported, then retried
                try:
                    async with sem:
                        r = await self.http.request(method, path, headers=headers, timeout=60, **kw)
                except httpx.TransportError as exc:
                    if attempt == 2:
                        raise
                    self.error(f"setup_http_{type(exc).__name__}")
                    await asyncio.sleep(0.2)
                    continue
                if r.status_code < 500:
                    break
                self.error(f"setup_http_{r.status_code}")
                self.setup_failures.append(f"{method} {path.split('/')[2]} attempt {attempt + 1}: "
                                           f"{r.status_code} {r.text[:120]}")
                await asyncio.sleep(0.2)
            if r.status_code >= 300:
                raise RuntimeError(f"{method} {path} -> {r.status_code} {r.text[:300]}")
            return r.json()

        async def register(p: Player) -> None:
            body = await call("POST", "/api/auth/register", json={"username": p.username, "password": "bench-pass-123"})
            p.token, p.user_id = body["token"], body["user"]["id"]

        t = time.perf_counter()
        await asyncio.gather(*(register(p) for p in self.players))
        console.print(f"registered {len(self.players)} players in {time.perf_counter() - t:.1f} s")

        gms = self.players[:self.args.rooms]

        async def make_room(gm: Player) -> None:
            room = await call("POST", "/api/rooms", gm, json={"name": f"bench room {gm.room}"})
            self.rooms[gm.room] = {"id": room["id"], "invite_code": room["invite_code"], "gm": gm}

        await asyncio.gather(*(make_room(gm) for gm in gms))

        async def join(p: Player) -> None:
            await call("POST", "/api/rooms/join", p, json={"invite_code": self.rooms[p.room]["invite_code"]})

        await asyncio.gather(*(join(p) for p in self.players[self.args.rooms:]))
        png = tiny_png()

        async def upload(gm: Player) -> None:
            room = self.rooms[gm.room]
            asset = await call("POST", f"/api/rooms/{room['id']}/assets", gm,
                               files={"file": ("token.png", png, "image/png")})
            room["asset_id"] = asset["id"]

        await asyncio.gather(*(upload(gm) for gm in gms))
        console.print(f"rooms, joins and uploads done in {time.perf_counter() - t:.1f} s total")

    # -- sockets
    async def request(self, p: Player, msg: dict[str, Any], wait_s: float = 30) -> dict[str, Any]:
        p.next_id += 1
        msg["id"] = p.next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        p.futures[p.next_id] = fut
        assert p.ws is not None
        await p.ws.send(orjson.dumps(msg).decode())
        try:
            return await asyncio.wait_for(fut, wait_s)
        finally:
            p.futures.pop(msg["id"], None)

    async def read_loop(self, p: Player) -> None:
        assert p.ws is not None
        room_id = self.rooms[p.room]["id"]
        seen = p.seen.setdefault(room_id, [])
        last_event = 0
        try:
            async for raw in p.ws:
                now_wall = time.time() * 1000
                now = time.perf_counter()
                msg = orjson.loads(raw)
                mtype = msg.get("type")
                if mtype == "ack" or mtype == "error":
                    mid = msg.get("id")
                    fut = p.futures.get(mid)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                    sent = p.pending.pop(mid, None)
                    if mtype == "error":
                        self.error(str(msg.get("code")))
                    elif sent is not None and self.measuring:
                        record_ms(self.ack_lat, (now - sent[0]) * 1000)
                        self.acks += 1
                    if mtype == "ack" and "version" in msg and mid != p.join_ack_id:
                        seen.append(msg["version"])
                    continue
                version = msg.get("version")
                if version is not None and msg.get("room_id") == room_id:
                    seen.append(version)
                    if version <= last_event:
                        self.reordered += 1
                    last_event = max(last_event, version)
                if mtype == "token.moved" or mtype == "token.moving":
                    if not self.measuring:
                        continue
                    owner = self.by_token.get(msg.get("token_id", ""))
                    t_send = owner.sent.get(msg.get("x")) if owner else None
                    if mtype == "token.moved":
                        self.delivered_moved += 1
                        record_ms(self.moved_ts, now_wall - msg["ts"])
                        if t_send is not None:
                            record_ms(self.moved_send, (now - t_send) * 1000)
                    else:
                        self.delivered_moving += 1
                        if "ts" in msg:
                            record_ms(self.moving_ts, now_wall - msg["ts"])
                        if t_send is not None:
                            record_ms(self.moving_send, (now - t_send) * 1000)
                elif self.measuring and mtype not in ("pong",):
                    self.events_other += 1
        except Exception as exc:  # connection closed under us: counted, not fatal
            if not getattr(self, "closing", False):
                self.disconnects += 1
                self.error(f"disconnect:{type(exc).__name__}")

    async def open_sockets(self) -> None:
        sem = asyncio.Semaphore(WS_CONNECT_CONCURRENCY)
        ws_base = f"ws://127.0.0.1:{self.server.port}/ws?token="

        async def open_one(p: Player) -> None:
            room = self.rooms[p.room]
            async with sem:
                p.ws = await connect(ws_base + p.token, compression=None, max_size=2 ** 22, open_timeout=60,
                                     ping_interval=None, max_queue=None)
                p.join_ack_id = 1
                p.reader = asyncio.create_task(self.read_loop(p))
                ack = await self.request(p, {"type": "join", "room_id": room["id"]}, wait_s=60)
            if ack.get("type") != "ack":
                raise RuntimeError(f"join failed: {ack}")
            p.join_version = int(ack["version"])
            seen = p.seen[room["id"]]
            # events at or before the join ack's version are covered by its snapshot
            seen[:] = [v for v in seen if v > p.join_version]

        t = time.perf_counter()
        await asyncio.gather(*(open_one(p) for p in self.players))
        console.print(f"{len(self.players)} sockets joined in {time.perf_counter() - t:.1f} s")

        async def add_token(p: Player) -> None:
            room = self.rooms[p.room]
            async with sem:
                ack = await self.request(p, {"type": "token.add", "room_id": room["id"], "asset_id": room["asset_id"],
                                             "x": 0.0, "y": float(p.index)}, wait_s=60)
            if ack.get("type") != "ack":
                raise RuntimeError(f"token.add failed: {ack}")
            p.token_id = ack["token"]["id"]
            self.by_token[p.token_id] = p

        await asyncio.gather(*(add_token(p) for p in self.players))
        console.print(f"{len(self.players)} tokens added in {time.perf_counter() - t:.1f} s total")

    # -- the measured phase
    async def play(self, p: Player, t0: float, stop_at: float) -> None:
        assert p.ws is not None
        room_id = self.rooms[p.room]["id"]
        per_second = self.args.preview_rate + 1
        step = 1.0 / per_second
        phase = random.uniform(0, 1.0)
        tick = 0
        x = 0.0
        while True:
            due = t0 + phase + tick * step
            if due >= stop_at:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.perf_counter()
            record_ms(self.send_lag, max(0.0, now - due) * 1000)
            x += 1.0
            y = random.uniform(0, 1000)
            commit = tick % per_second == per_second - 1
            msg: dict[str, Any] = {"type": "token.move", "room_id": room_id, "token_id": p.token_id, "x": x, "y": y}
            p.sent[x] = now
            if commit:
                p.next_id += 1
                msg["id"] = p.next_id
                p.pending[p.next_id] = (now, "move")
                self.moves_sent += 1
            else:
                msg["preview"] = True
                self.previews_sent += 1
            try:
                await p.ws.send(orjson.dumps(msg).decode())
            except Exception as exc:
                self.error(f"send:{type(exc).__name__}")
                return
            tick += 1

    async def sample(self, stop: asyncio.Event) -> None:
        me = psutil.Process()
        me.cpu_percent(None)
        procs = self.server.processes()
        for pr in procs:
            pr.cpu_percent(None)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if stop.is_set():
                break
            self.client_cpu.append(me.cpu_percent(None))
            cpu = rss = 0.0
            for pr in procs:
                with contextlib.suppress(psutil.Error):
                    cpu += pr.cpu_percent(None)
                    rss += pr.memory_info().rss
            self.server.samples_cpu.append(cpu)
            self.server.samples_rss.append(rss / 2 ** 20)

    async def run(self) -> dict[str, Any]:
        await self.setup_http()
        await self.open_sockets()
        await asyncio.sleep(1.0)  # let the token.added fan-out settle
        before = await scrape_metrics(self.http)
        stop = asyncio.Event()
        sampler = asyncio.create_task(self.sample(stop))
        self.measuring = True
        t0 = time.perf_counter()
        stop_at = t0 + self.args.duration
        await asyncio.gather(*(self.play(p, t0, stop_at) for p in self.players))
        # wait (bounded) for the outstanding acks, then for the fan-out to go quiet
        for _ in range(150):
            if not any(p.pending for p in self.players):
                break
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - t0
        stop.set()
        await sampler
        await asyncio.sleep(1.5)
        self.measuring = False
        unanswered = sum(len(p.pending) for p in self.players)
        after = await scrape_metrics(self.http)

        # lost / duplicate versions per socket, against each room's final version
        final: dict[str, int] = {}
        for room in self.rooms:
            r = await self.http.get(f"/api/rooms/{room['id']}", headers={"Authorization": f"Bearer {room['gm'].token}"},
                                    timeout=30)
            final[room["id"]] = int(r.json()["room"]["version"])
        lost = dup = 0
        for p in self.players:
            room_id = self.rooms[p.room]["id"]
            versions = p.seen[room_id]
            distinct = set(versions)
            dup += len(versions) - len(distinct)
            lost += sum(1 for v in range(p.join_version + 1, final[room_id] + 1) if v not in distinct)

        self.closing = True
        await asyncio.gather(*(p.ws.close() for p in self.players if p.ws), return_exceptions=True)
        for p in self.players:
            if p.reader:
                p.reader.cancel()
        await asyncio.gather(*(p.reader for p in self.players if p.reader), return_exceptions=True)

        measured = self.args.duration
        cpu, rss = self.server.samples_cpu, self.server.samples_rss
        return {
            "config": {k: getattr(self.args, k) for k in ("players", "rooms", "duration", "backend", "preview_rate")},
            "elapsed_s": round(elapsed, 2),
            "moves_sent": self.moves_sent, "previews_sent": self.previews_sent, "acks": self.acks,
            "unanswered": unanswered,
            "ack_ms": summary(self.ack_lat),
            "moved_delivery_ts_ms": summary(self.moved_ts), "moved_delivery_send_ms": summary(self.moved_send),
            "moving_delivery_ts_ms": summary(self.moving_ts), "moving_delivery_send_ms": summary(self.moving_send),
            "moved_deliveries": self.delivered_moved, "moving_deliveries": self.delivered_moving,
            "moved_deliveries_per_s": round(self.delivered_moved / measured, 1),
            "moving_deliveries_per_s": round(self.delivered_moving / measured, 1),
            "commits_per_s": round(self.acks / measured, 1),
            "lost": lost, "duplicates": dup, "reordered": self.reordered,
            "errors": dict(self.errors), "disconnects": self.disconnects, "setup_failures": self.setup_failures,
            "send_lag_ms": summary(self.send_lag),
            "client_cpu_pct": {"median": median(self.client_cpu), "max": max(self.client_cpu, default=0.0)},
            "server_cpu_pct": {"median": median(cpu), "max": max(cpu, default=0.0)},
            "server_rss_mb": {"median": round(median(rss), 1), "max": round(max(rss, default=0.0), 1)},
            "server_metrics": metrics_delta(before, after),
        }


# ---------------------------------------------------------------- report

def print_report(res: dict[str, Any]) -> None:
    c = res["config"]
    table = Table(title=f"bench_ws: {c['players']} players / {c['rooms']} rooms / {c['duration']} s / "
                        f"{c['backend']} / preview {c['preview_rate']}/s")
    for col in ("metric", "n", "p50", "p95", "p99", "max"):
        table.add_column(col, justify="right" if col != "metric" else "left")

    def row(name: str, s: dict[str, float]) -> None:
        table.add_row(name, str(s["n"]), *(f"{s[k]:.1f}" for k in ("p50", "p95", "p99", "max")))

    row("ack latency ms (token.move)", res["ack_ms"])
    row("token.moved delivery ms (server ts)", res["moved_delivery_ts_ms"])
    row("token.moved delivery ms (send->recv)", res["moved_delivery_send_ms"])
    if c["preview_rate"]:
        row("token.moving delivery ms (server ts)", res["moving_delivery_ts_ms"])
        row("token.moving delivery ms (send->recv)", res["moving_delivery_send_ms"])
    row("client send lag ms", res["send_lag_ms"])
    console.print(table)

    t2 = Table(show_header=False, title="throughput, integrity, resources")
    t2.add_column()
    t2.add_column(justify="right")
    for label, value in [
        ("commits sent / acked / unanswered", f"{res['moves_sent']} / {res['acks']} / {res['unanswered']}"),
        ("commits acked per s", res["commits_per_s"]),
        ("token.moved deliveries per s", res["moved_deliveries_per_s"]),
        ("token.moving deliveries per s (previews sent)",
         f"{res['moving_deliveries_per_s']} ({res['previews_sent']})"),
        ("lost / duplicate / out-of-order versions", f"{res['lost']} / {res['duplicates']} / {res['reordered']}"),
        ("errors", json.dumps(res["errors"]) if res["errors"] else "0"),
        ("client CPU % median / max (100 = 1 core)",
         f"{res['client_cpu_pct']['median']:.0f} / {res['client_cpu_pct']['max']:.0f}"),
        ("server CPU % median / max", f"{res['server_cpu_pct']['median']:.0f} / {res['server_cpu_pct']['max']:.0f}"),
        ("server RSS MB median / max", f"{res['server_rss_mb']['median']} / {res['server_rss_mb']['max']}"),
        ("server log warnings/errors", res.get("server_log_problems", 0)),
    ]:
        t2.add_row(label, str(value))
    console.print(t2)

    t3 = Table(title="server histograms over the measured phase (bucket-interpolated)")
    for col in ("series", "count", "mean ms", "p50", "p95", "p99"):
        t3.add_column(col, justify="right" if col != "series" else "left", no_wrap=col == "series")
    for key, s in sorted(res["server_metrics"].items()):
        t3.add_row(key, f"{s['count']:.0f}", *(f"{s[k]:.2f}" for k in ("mean_ms", "p50_ms", "p95_ms", "p99_ms")))
    console.print(t3)


def server_log_problems(path: Path) -> tuple[int, list[str]]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return 0, []
    bad = [ln for ln in lines if any(w in ln for w in ("ERROR", "Traceback", "error", "WARNING", "warning"))]
    return len(bad), bad[:10]


# ---------------------------------------------------------------- main

async def amain(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="tableforge-bench-ws-"))
    db_name: str | None = None
    server: Server | None = None
    try:
        database_url = None
        if args.backend == "postgres":
            db_name, database_url = await create_database()
        server = start_server(data_dir, database_url)
        limits = httpx.Limits(max_connections=HTTP_CONCURRENCY * 2, max_keepalive_connections=HTTP_CONCURRENCY * 2)
        async with httpx.AsyncClient(base_url=server.base, limits=limits) as http:
            await wait_healthy(server, http)
            bench = Bench(args, server, http)
            result = await asyncio.wait_for(bench.run(), timeout=args.duration + args.setup_timeout)
        stop_server(server)
        result["server_log_problems"], result["server_log_sample"] = server_log_problems(server.log_path)
        result["server_exit_code"] = server.proc.returncode
        return result
    except Exception:
        if server is not None:
            stop_server(server)
            console.print("[red]failed; server log tail:[/red]")
            console.print(server.log_path.read_text(errors="replace")[-4000:], markup=False, highlight=False)
        raise
    finally:
        if server is not None:
            stop_server(server)
        if db_name is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(drop_database(db_name), 30)
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=40)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--preview-rate", type=int, default=0, help="preview moves per player per second")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--setup-timeout", type=float, default=300.0, help="cap on setup + drain time (s)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not (1 <= args.rooms <= args.players <= 5000 and 0 < args.duration <= 600 and 0 <= args.preview_rate <= 60):
        parser.error("need 1 <= rooms <= players <= 5000, 0 < duration <= 600, 0 <= preview-rate <= 60")
    random.seed(args.seed)
    # SIGTERM behaves like Ctrl-C so the finally blocks stop the server and drop the database
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        result = asyncio.run(amain(args))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: server stopped and database dropped[/yellow]")
        return 130
    print_report(result)
    if result["server_log_problems"]:
        console.print("[yellow]server log lines with warnings/errors (first 10):[/yellow]")
        for line in result["server_log_sample"]:
            console.print("  " + line[:300], markup=False, highlight=False)
    for line in result["setup_failures"]:
        console.print("[yellow]setup request failed:[/yellow] " + line, highlight=False)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

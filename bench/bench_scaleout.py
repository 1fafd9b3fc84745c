"""Scale-out benchmark: K TableForge instances (PostgreSQL + Redis) vs K python-socketio instances (AsyncRedisManager).

Run: .venv/bin/python bench/bench_scaleout.py --instances 2 --players 1000 --rooms 200 --duration 25
         [--ramp 5] [--preview-rate 10] [--repeat 3] [--preview-repeat 2] [--servers tableforge,socketio] [--json FILE]
     (needs the `bench` extra for the comparison server: pip install -e '.[bench]')

What it does, all on 127.0.0.1, in one invocation so both servers see the same machine state:
1. Creates a fresh PostgreSQL database (dropped at the end) and starts K `tableforge serve` instances on it
   with the local Redis and a unique TABLEFORGE_REDIS_NAMESPACE; starts K `bench/socketio_peer.py`
   instances on the same Redis with their own channel name.
2. TableForge: registers the players over HTTP, makes the rooms (first player = GM), uploads one PNG per
   room, opens one socket per player on instance (index // rooms) % K, so each room's players are spread
   over the instances, joins, adds one token each. socket.io: one socket per player on the same instance
   as its TableForge twin, `join` of its room.
3. Phases, each `--ramp` s of load (not measured) then `--duration` s measured, for each server in turn
   (interleaved, `--repeat` times): "moves": every player commits one move per second (random phase);
   "preview": the same plus `--preview-rate` preview moves per second. `--move-rate` changes the commits per
   player per second (2 with 100 rooms of 10: the 2,000 moves/s of issue 17).
   TableForge: `token.move` (stored durably in PostgreSQL before the ack and the event) and
   `token.move {preview:true}` (relayed, not stored). socket.io: `move` (ack, emitted to the room, stored
   nowhere) and `preview` (emitted, no ack).

Measured per phase (messages sent in the measured window): delivery latency send -> receipt by each other
member of the room (both on the client's perf_counter clock), deliveries per second, ack latency; loss and
duplicates per (receiver, sender) by the sender's move sequence (both servers), and for TableForge also
room-version gaps per socket over the phase (against the room's version before and after it); CPU and RSS
per instance and client CPU (psutil, 1 s samples); TableForge's own histograms over the measured window
summed over the instances (/metrics: ws_handle, db_transaction, delivery, broker pub/sub lag); TableForge's
database CPU: the PostgreSQL processes serving the run's database (backends and autovacuum workers, from
/proc/<pid>/stat) over the measured window, per committed move (the rise of the rooms' versions).

The socket.io client speaks engine.io v4 / socket.io v5 directly over the same `websockets` client the
TableForge client uses (not python-socketio's AsyncClient, one aiohttp session per socket), so the client
side costs the same for both servers and a saturated client does not masquerade as a slow server.
Bounded in count and time; servers and the database are cleaned up on any exit (Ctrl-C, SIGTERM).
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
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ws as bw  # shared helpers: histograms, database, metrics deltas

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/0"
HTTP_CONCURRENCY = 16
WS_CONNECT_CONCURRENCY = 20
HISTOGRAMS = ("tableforge_ws_handle_seconds", "tableforge_db_transaction_seconds", "tableforge_delivery_seconds",
              "tableforge_broker_pubsub_lag_seconds")
COUNTERS = ("tableforge_ws_dropped_total", "tableforge_broker_dropped_total", "tableforge_reorder_gap_fills_total",
            "tableforge_reorder_dropped_total", "tableforge_ws_closed_total", "tableforge_ws_errors_total")
console = Console(width=shutil.get_terminal_size((160, 40)).columns)


def png_for(seed: int, size: int = 16) -> bytes:
    """A distinct tiny PNG per room (identical concurrent uploads hit a known temp-file race)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(((x + seed) % 256, seed // 256 % 256, 160)) * size for x in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ---------------------------------------------------------------- processes

@dataclass
class Instance:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    cpu: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    ps: list[psutil.Process] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def total_rss_mb(instances: list[Instance]) -> float:
    """RSS of the instances' processes now, summed (MB)."""
    return sum(pr.memory_info().rss for inst in instances for pr in inst.processes()) / 2 ** 20


def launch(name: str, argv: list[str], env: dict[str, str], port: int, log_dir: Path) -> Instance:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return Instance(name, proc, port, log_path)


async def wait_healthy(inst: Instance, wait_s: float = 90) -> None:
    deadline = time.monotonic() + wait_s
    async with httpx.AsyncClient(base_url=inst.base) as http:
        while time.monotonic() < deadline:
            if inst.proc.poll() is not None:
                raise RuntimeError(f"{inst.name} exited with {inst.proc.returncode}:\n"
                                   f"{inst.log_path.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/health", timeout=2)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{inst.name} did not become healthy in {wait_s:.0f} s")


def stop_all(instances: list[Instance]) -> None:
    for inst in instances:
        if inst.proc.poll() is None:
            inst.proc.send_signal(signal.SIGTERM)
    for inst in instances:
        try:
            inst.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(inst.proc.pid, signal.SIGKILL)
            inst.proc.wait(timeout=5)


async def start_tableforge(k: int, database_url: str, namespace: str, data_dir: Path, pool_max: int) -> list[Instance]:
    env = {**os.environ, "TABLEFORGE_DATABASE_URL": database_url, "TABLEFORGE_REDIS_URL": REDIS_URL,
           "TABLEFORGE_REDIS_NAMESPACE": namespace, "TABLEFORGE_DATA_DIR": str(data_dir),
           "TABLEFORGE_LOG_LEVEL": "WARNING", "TABLEFORGE_WS_RATE_PER_SECOND": "500",
           "TABLEFORGE_WS_MAX_PER_ADDRESS": "1000000",
           "TABLEFORGE_WS_RATE_BURST": "1000", "TABLEFORGE_DB_POOL_MAX": str(pool_max)}
    instances = []
    for i in range(k):
        port = bw.free_port()
        argv = [sys.executable, "-m", "tableforge", "serve", "--port", str(port)]
        inst = launch(f"tableforge-{i}", argv, {**env, "TABLEFORGE_INSTANCE_ID": f"{namespace}-{i}"}, port, data_dir)
        instances.append(inst)
        if i == 0:  # the first one migrates alone
            await wait_healthy(inst)
    await asyncio.gather(*(wait_healthy(inst) for inst in instances[1:]))
    return instances


async def start_socketio(k: int, channel: str, log_dir: Path) -> list[Instance]:
    instances = []
    for i in range(k):
        port = bw.free_port()
        argv = [sys.executable, str(ROOT / "bench" / "socketio_peer.py"), "--port", str(port),
                "--redis", REDIS_URL, "--channel", channel]
        instances.append(launch(f"socketio-{i}", argv, dict(os.environ), port, log_dir))
    await asyncio.gather(*(wait_healthy(inst) for inst in instances))
    return instances


async def drop_redis_namespace(namespace: str) -> None:
    """Delete the run's keys (cache entries, streams, presence) by SCAN; never touches other namespaces."""
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    try:
        batch = []
        async for key in redis.scan_iter(match=f"tableforge:{namespace}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                await redis.unlink(*batch)
                batch.clear()
        if batch:
            await redis.unlink(*batch)
    finally:
        await redis.aclose()


def log_problems(instances: list[Instance]) -> list[str]:
    out = []
    slow = 0
    for inst in instances:
        with contextlib.suppress(OSError):
            for line in inst.log_path.read_text(errors="replace").splitlines():
                if "slow_statement" in line or "slow_query" in line:  # counted, not listed
                    slow += 1
                elif any(w in line for w in ("ERROR", "Traceback", "error", "WARNING", "warning")):
                    out.append(f"{inst.name}: {line[:300]}")
    if slow:
        out.insert(0, f"{slow} slow_statement/slow_query warnings (> 100 ms) in the tableforge logs")
    return out


# ---------------------------------------------------------------- metrics

async def scrape(inst: Instance) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    try:
        async with httpx.AsyncClient() as http:
            text = (await http.get(inst.base + "/metrics", timeout=10)).text
    except httpx.HTTPError:
        return {}, {}
    counters: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(COUNTERS):
                label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                counters[sample.name + (f"{{{label}}}" if label else "")] = sample.value
    return bw.parse_histograms(text, HISTOGRAMS), counters


async def scrape_all(instances: list[Instance]) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Histograms and counters summed over the instances."""
    hists: dict[str, dict[str, Any]] = {}
    counters: dict[str, float] = {}
    for h, c in await asyncio.gather(*(scrape(inst) for inst in instances)):
        for key, e in h.items():
            tot = hists.setdefault(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
            tot["sum"] += e["sum"]
            tot["count"] += e["count"]
            for le, n in e["buckets"].items():
                tot["buckets"][le] = tot["buckets"].get(le, 0.0) + n
        for key, v in c.items():
            counters[key] = counters.get(key, 0.0) + v
    return hists, counters


# ---------------------------------------------------------------- clients

@dataclass
class Player:
    index: int
    room: int
    inst: int
    username: str = ""
    token: str = ""
    user_id: str = ""
    token_id: str = ""
    ws: ClientConnection | None = None
    reader: asyncio.Task[None] | None = None
    next_id: int = 0
    futures: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    pending: dict[int, float] = field(default_factory=dict)  # commit msg id -> send time
    sent: dict[float, float] = field(default_factory=dict)  # x -> send time (this phase)
    commits: list[float] = field(default_factory=list)  # x of the commits sent this phase
    got: dict[int, list[float]] = field(default_factory=dict)  # sender index -> x of its commits received
    versions: list[int] = field(default_factory=list)  # tableforge: room versions seen (events + own acks)
    x: float = 0.0


class Phase:
    def __init__(self, server: str, mode: str, preview_rate: int, move_rate: float = 1.0) -> None:
        self.server, self.mode, self.preview_rate, self.move_rate = server, mode, preview_rate, move_rate
        self.active = False  # counting deliveries (ramp + measured + drain)
        self.w0 = self.w1 = 0.0  # measured window (perf_counter), by send time
        self.moved, self.moving, self.ack = bw.new_hist(), bw.new_hist(), bw.new_hist()
        self.send_lag = bw.new_hist()
        self.n_moved = self.n_moving = self.commits = self.previews = self.acks = 0
        self.previews_expected = 0
        self.errors: dict[str, int] = {}

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def in_window(self, t_send: float) -> bool:
        return self.w0 <= t_send < self.w1


class Driver:
    """One server family's cluster and its sockets; subclasses speak the wire protocol."""

    kind = ""

    def __init__(self, players: list[Player], instances: list[Instance], room_ids: list[str]) -> None:
        self.players = players
        self.instances = instances
        self.room_ids = room_ids
        self.phase: Phase | None = None
        self.disconnects = 0
        self.closing = False

    def by_room(self) -> dict[int, list[Player]]:
        out: dict[int, list[Player]] = {}
        for p in self.players:
            out.setdefault(p.room, []).append(p)
        return out

    def on_move(self, receiver: Player, sender: Player | None, x: float, commit: bool, now: float) -> None:
        ph = self.phase
        if ph is None or not ph.active or sender is None:
            return
        t_send = sender.sent.get(x)
        if commit:
            receiver.got.setdefault(sender.index, []).append(x)
        if t_send is None or not ph.in_window(t_send):
            return
        if commit:
            ph.n_moved += 1
            bw.record_ms(ph.moved, (now - t_send) * 1000)
        else:
            ph.n_moving += 1
            bw.record_ms(ph.moving, (now - t_send) * 1000)

    def on_ack(self, p: Player, mid: int, msg: Any, now: float) -> None:
        fut = p.futures.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(msg)
        t_send = p.pending.pop(mid, None)
        ph = self.phase
        if t_send is not None and ph is not None and ph.in_window(t_send):
            ph.acks += 1
            bw.record_ms(ph.ack, (now - t_send) * 1000)

    def lost_closed(self, exc: BaseException) -> None:
        if not self.closing:
            self.disconnects += 1
            if self.phase is not None:
                self.phase.error(f"disconnect:{type(exc).__name__}")

    async def send(self, p: Player, x: float, y: float, commit: bool) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        self.closing = True
        await asyncio.gather(*(p.ws.close() for p in self.players if p.ws), return_exceptions=True)
        for p in self.players:
            if p.reader:
                p.reader.cancel()
        await asyncio.gather(*(p.reader for p in self.players if p.reader), return_exceptions=True)


class TableForgeDriver(Driver):
    kind = "tableforge"

    def __init__(self, players: list[Player], instances: list[Instance], rooms: int) -> None:
        super().__init__(players, instances, [""] * rooms)
        self.by_token: dict[str, Player] = {}
        self.gms: dict[int, Player] = {}
        self.setup_errors: dict[str, int] = {}

    async def setup(self) -> None:
        tag = uuid.uuid4().hex[:6]
        sem = asyncio.Semaphore(HTTP_CONCURRENCY)
        clients = [httpx.AsyncClient(base_url=inst.base, timeout=120) for inst in self.instances]

        async def call(p: Player, method: str, path: str, auth: bool = True, **kw: Any) -> Any:
            headers = {"Authorization": f"Bearer {p.token}"} if auth else {}
            for attempt in range(3):  # a 5xx is a server bug: counted and reported, then retried
                async with sem:
                    try:
                        r = await clients[p.inst].request(method, path, headers=headers, **kw)
                    except httpx.TransportError as exc:
                        self.setup_errors[type(exc).__name__] = self.setup_errors.get(type(exc).__name__, 0) + 1
                        if attempt == 2:
                            raise
                        continue
                if r.status_code < 500:
                    break
                self.setup_errors[str(r.status_code)] = self.setup_errors.get(str(r.status_code), 0) + 1
                await asyncio.sleep(0.2)
            if r.status_code >= 300:
                raise RuntimeError(f"{method} {path} -> {r.status_code} {r.text[:300]}")
            return r.json()

        async def register(p: Player) -> None:
            p.username = f"s{tag}_{p.index}"
            body = await call(p, "POST", "/api/auth/register", auth=False,
                              json={"username": p.username, "password": "bench-pass-123"})
            p.token, p.user_id = body["token"], body["user"]["id"]

        t = time.perf_counter()
        try:
            await asyncio.gather(*(register(p) for p in self.players))
            console.print(f"tableforge: registered {len(self.players)} players in {time.perf_counter() - t:.1f} s")
            rooms = self.by_room()
            self.gms = {r: ps[0] for r, ps in rooms.items()}
            invites: dict[int, str] = {}
            assets: dict[int, str] = {}

            async def make_room(r: int, gm: Player) -> None:
                room = await call(gm, "POST", "/api/rooms", json={"name": f"scaleout room {r}"})
                self.room_ids[r], invites[r] = room["id"], room["invite_code"]
                asset = await call(gm, "POST", f"/api/rooms/{room['id']}/assets",
                                   files={"file": ("token.png", png_for(r), "image/png")})
                assets[r] = asset["id"]

            await asyncio.gather(*(make_room(r, gm) for r, gm in self.gms.items()))
            await asyncio.gather(*(call(p, "POST", "/api/rooms/join", json={"invite_code": invites[p.room]})
                                   for r, ps in rooms.items() for p in ps[1:]))
            console.print(f"tableforge: rooms, joins, uploads done in {time.perf_counter() - t:.1f} s")
        finally:
            for c in clients:
                await c.aclose()

        csem = asyncio.Semaphore(WS_CONNECT_CONCURRENCY)

        async def open_one(p: Player) -> None:
            async with csem:
                p.ws = await connect(f"ws://127.0.0.1:{self.instances[p.inst].port}/ws?token={p.token}",
                                     compression=None, max_size=2 ** 22, open_timeout=60, ping_interval=None,
                                     max_queue=None)
                p.reader = asyncio.create_task(self.read_loop(p))
                ack = await self.retry(p, {"type": "join", "room_id": self.room_ids[p.room]})
                ack = await self.retry(p, {"type": "token.add", "room_id": self.room_ids[p.room],
                                           "asset_id": assets[p.room], "x": 0.0, "y": float(p.index)})
                p.token_id = ack["token"]["id"]
                self.by_token[p.token_id] = p

        await asyncio.gather(*(open_one(p) for p in self.players))
        console.print(f"tableforge: {len(self.players)} sockets joined with a token each in "
                      f"{time.perf_counter() - t:.1f} s total")

    async def request(self, p: Player, msg: dict[str, Any], wait_s: float = 60) -> Any:
        assert p.ws is not None
        p.next_id += 1
        msg["id"] = p.next_id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        p.futures[p.next_id] = fut
        await p.ws.send(orjson.dumps(msg).decode())
        return await asyncio.wait_for(fut, wait_s)

    async def retry(self, p: Player, msg: dict[str, Any]) -> Any:
        """Setup requests: a transient error (db_unavailable on a loaded machine) is counted and retried."""
        for attempt in range(5):
            ack = await self.request(p, dict(msg))
            if ack.get("type") == "ack":
                return ack
            code = f"{msg['type']}:{ack.get('code')}"
            self.setup_errors[code] = self.setup_errors.get(code, 0) + 1
            await asyncio.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"{msg['type']} failed 5 times: {ack}")

    async def read_loop(self, p: Player) -> None:
        assert p.ws is not None
        try:
            async for raw in p.ws:
                now = time.perf_counter()
                msg = orjson.loads(raw)
                mtype = msg.get("type")
                if mtype == "ack" or mtype == "error":
                    if mtype == "error" and self.phase is not None:
                        self.phase.error(str(msg.get("code")))
                    if mtype == "ack" and "version" in msg and "snapshot" not in msg:
                        p.versions.append(msg["version"])
                    self.on_ack(p, msg.get("id"), msg, now)
                    continue
                version = msg.get("version")
                if version is not None:
                    p.versions.append(version)
                if mtype == "token.moved" or mtype == "token.moving":
                    self.on_move(p, self.by_token.get(msg.get("token_id", "")), msg.get("x"),
                                 mtype == "token.moved", now)
        except Exception as exc:  # closed under us: counted, not fatal
            self.lost_closed(exc)

    async def send(self, p: Player, x: float, y: float, commit: bool) -> None:
        assert p.ws is not None
        msg: dict[str, Any] = {"type": "token.move", "room_id": self.room_ids[p.room], "token_id": p.token_id,
                               "x": x, "y": y}
        if commit:
            p.next_id += 1
            msg["id"] = p.next_id
            p.pending[p.next_id] = p.sent[x]
        else:
            msg["preview"] = True
        await p.ws.send(orjson.dumps(msg).decode())

    async def room_versions(self) -> dict[int, int]:
        sem = asyncio.Semaphore(HTTP_CONCURRENCY)
        clients = [httpx.AsyncClient(base_url=inst.base, timeout=60) for inst in self.instances]
        out: dict[int, int] = {}

        async def one(r: int, gm: Player) -> None:
            for attempt in range(6):  # a loaded machine answers 503 now and then: retried, then an error
                with contextlib.suppress(httpx.HTTPError):
                    async with sem:
                        resp = await clients[gm.inst].get(f"/api/rooms/{self.room_ids[r]}",
                                                          headers={"Authorization": f"Bearer {gm.token}"})
                    if resp.status_code == 200:
                        out[r] = int(resp.json()["room"]["version"])
                        return
                await asyncio.sleep(0.5 * (attempt + 1))
            raise RuntimeError(f"could not read room {r}'s version")

        try:
            await asyncio.gather(*(one(r, gm) for r, gm in self.gms.items()))
        finally:
            for c in clients:
                await c.aclose()
        return out


class SocketIODriver(Driver):
    """socket.io v5 over engine.io v4, websocket transport only, spoken directly (see the module doc)."""

    kind = "socketio"

    def __init__(self, players: list[Player], instances: list[Instance], rooms: int, tag: str) -> None:
        super().__init__(players, instances, [f"{tag}-{r}" for r in range(rooms)])
        self.by_index = {p.index: p for p in players}

    async def setup(self) -> None:
        t = time.perf_counter()
        csem = asyncio.Semaphore(WS_CONNECT_CONCURRENCY)

        async def open_one(p: Player) -> None:
            async with csem:
                ws = await connect(f"ws://127.0.0.1:{self.instances[p.inst].port}/socket.io/?EIO=4&transport=websocket",
                                   compression=None, max_size=2 ** 22, open_timeout=60, ping_interval=None,
                                   max_queue=None)
                opened = await asyncio.wait_for(ws.recv(), 30)
                if not str(opened).startswith("0"):
                    raise RuntimeError(f"engine.io open expected, got {opened!r}")
                await ws.send("40")
                connected = await asyncio.wait_for(ws.recv(), 30)
                if not str(connected).startswith("40"):
                    raise RuntimeError(f"socket.io connect expected, got {connected!r}")
                p.ws = ws
                p.reader = asyncio.create_task(self.read_loop(p))
                await self.request(p, "join", {"room": self.room_ids[p.room]})

        await asyncio.gather(*(open_one(p) for p in self.players))
        console.print(f"socketio: {len(self.players)} sockets joined in {time.perf_counter() - t:.1f} s")

    async def request(self, p: Player, event: str, data: Any, wait_s: float = 60) -> Any:
        assert p.ws is not None
        p.next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        p.futures[p.next_id] = fut
        await p.ws.send(f"42{p.next_id}" + orjson.dumps([event, data]).decode())
        return await asyncio.wait_for(fut, wait_s)

    async def read_loop(self, p: Player) -> None:
        assert p.ws is not None
        try:
            async for raw in p.ws:
                now = time.perf_counter()
                frame = str(raw)
                if frame.startswith("42"):
                    event, data = orjson.loads(frame[2:])
                    if event == "moved" or event == "moving":
                        self.on_move(p, self.by_index.get(data["p"]), data["x"], event == "moved", now)
                elif frame.startswith("43"):
                    body = frame.find("[")
                    self.on_ack(p, int(frame[2:body]), orjson.loads(frame[body:]), now)
                elif frame == "2":  # engine.io ping -> pong
                    await p.ws.send("3")
        except Exception as exc:
            self.lost_closed(exc)

    async def send(self, p: Player, x: float, y: float, commit: bool) -> None:
        assert p.ws is not None
        body = orjson.dumps(["move" if commit else "preview", {"p": p.index, "x": x, "y": y}]).decode()
        if commit:
            p.next_id += 1
            p.pending[p.next_id] = p.sent[x]
            await p.ws.send(f"42{p.next_id}{body}")
        else:
            await p.ws.send(f"42{body}")


# ---------------------------------------------------------------- one measured phase

async def play(driver: Driver, ph: Phase, p: Player, t0: float, stop_at: float) -> None:
    per_second = ph.preview_rate + 1  # ticks per commit
    step = 1.0 / (per_second * ph.move_rate)
    phase = random.uniform(0, 1.0)
    tick = 0
    while True:
        due = t0 + phase + tick * step
        if due >= stop_at:
            return
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.perf_counter()
        commit = tick % per_second == per_second - 1
        p.x += 1.0
        x = p.x
        p.sent[x] = now
        measured = ph.in_window(now)
        if measured:
            bw.record_ms(ph.send_lag, max(0.0, now - due) * 1000)
        try:
            await driver.send(p, x, random.uniform(0, 1000), commit)
        except Exception as exc:
            ph.error(f"send:{type(exc).__name__}")
            return
        if commit:
            p.commits.append(x)
            ph.commits += measured
        else:
            ph.previews += measured
        tick += 1


async def sample(instances: list[Instance], client_cpu: list[float], stop: asyncio.Event) -> None:
    me = psutil.Process()
    me.cpu_percent(None)
    for inst in instances:
        inst.cpu.clear()
        inst.rss.clear()
        inst.ps = inst.processes()
        for pr in inst.ps:
            with contextlib.suppress(psutil.Error):
                pr.cpu_percent(None)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if stop.is_set():
            break
        client_cpu.append(me.cpu_percent(None))
        for inst in instances:
            cpu = rss = 0.0
            for pr in inst.ps:
                with contextlib.suppress(psutil.Error):
                    cpu += pr.cpu_percent(None)
                    rss += pr.memory_info().rss
            inst.cpu.append(cpu)
            inst.rss.append(rss / 2 ** 20)


async def quiesce(instances: list[Instance], below_pct: float = 15.0, max_s: float = 60.0) -> tuple[float, bool]:
    """Wait until every instance is under `below_pct` % of a core for 2 s running (a backlog drained)."""
    t = time.perf_counter()
    procs = [pr for inst in instances for pr in inst.processes()]
    for pr in procs:
        with contextlib.suppress(psutil.Error):
            pr.cpu_percent(None)
    calm = 0
    while time.perf_counter() - t < max_s:
        await asyncio.sleep(1.0)
        busy = 0.0
        for pr in procs:
            with contextlib.suppress(psutil.Error):
                busy = max(busy, pr.cpu_percent(None))
        calm = calm + 1 if busy < below_pct else 0
        if calm >= 2:
            return round(time.perf_counter() - t, 1), False
    console.print(f"[yellow]servers still busy after {max_s:.0f} s; going on[/yellow]")
    return round(time.perf_counter() - t, 1), True


async def run_phase(driver: Driver, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    preview_rate = args.preview_rate if mode == "preview" else 0
    ph = Phase(driver.kind, mode, preview_rate, args.move_rate)
    for p in driver.players:
        p.sent.clear()
        p.commits.clear()
        p.got.clear()
        p.pending.clear()
    tf = driver if isinstance(driver, TableForgeDriver) else None
    start_versions = await tf.room_versions() if tf else {}
    seen_from = {p.index: len(p.versions) for p in driver.players}
    driver.phase = ph
    ph.active = True
    t0 = time.perf_counter()
    ph.w0, ph.w1 = t0 + args.ramp, t0 + args.ramp + args.duration
    console.print(f"[bold]{driver.kind} / {mode}[/bold]: {args.ramp:.0f} s ramp + {args.duration:.0f} s measured")
    loads = asyncio.gather(*(play(driver, ph, p, t0, ph.w1) for p in driver.players))
    await asyncio.sleep(max(0.0, ph.w0 - time.perf_counter()))
    client_cpu: list[float] = []
    stop = asyncio.Event()
    db0 = await db_cpu(args.database_url) if tf else None  # (the database answers at once, a busy server may not)
    sampler = asyncio.create_task(sample(driver.instances, client_cpu, stop))  # before the scrape: a
    before = await scrape_all(driver.instances) if tf else ({}, {})  # saturated server answers it late
    await loads
    db1 = await db_cpu(args.database_url) if tf else None
    stop.set()
    await sampler
    after = await scrape_all(driver.instances) if tf else ({}, {})
    # drain: outstanding acks (bounded), then let the fan-out go quiet
    for _ in range(150):
        if not any(p.pending for p in driver.players):
            break
        await asyncio.sleep(0.1)
    unanswered = sum(len(p.pending) for p in driver.players)
    await asyncio.sleep(1.5)
    ph.active = False

    # loss / duplicates per (receiver, sender) by the sender's commits this phase
    lost_seq = dup_seq = expected_seq = 0
    for members in driver.by_room().values():
        for rcv in members:
            for snd in members:
                if snd is rcv:
                    continue
                got = rcv.got.get(snd.index, [])
                dup_seq += len(got) - len(set(got))
                expected_seq += len(snd.commits)
                lost_seq += len(set(snd.commits) - set(got))
    lost_ver = dup_ver = None
    if tf:
        end_versions = await tf.room_versions()
        lost_ver = dup_ver = 0
        for p in driver.players:
            seen = p.versions[seen_from[p.index]:]
            in_range = [v for v in seen if start_versions[p.room] < v <= end_versions[p.room]]
            distinct = set(in_range)
            dup_ver += len(in_range) - len(distinct)
            lost_ver += end_versions[p.room] - start_versions[p.room] - len(distinct)
    members = {r: len(ms) for r, ms in driver.by_room().items()}
    ph.previews_expected = ph.previews * (sum(members.values()) / len(members) - 1)
    d = args.duration
    result = {
        "server": driver.kind, "mode": mode, "instances": len(driver.instances), "preview_rate": preview_rate,
        "commits_sent": ph.commits, "acks": ph.acks, "unanswered": unanswered, "previews_sent": ph.previews,
        "moved_ms": bw.summary(ph.moved), "moving_ms": bw.summary(ph.moving), "ack_ms": bw.summary(ph.ack),
        "send_lag_ms": bw.summary(ph.send_lag),
        "moved_per_s": round(ph.n_moved / d, 1), "moving_per_s": round(ph.n_moving / d, 1),
        "deliveries_per_s": round((ph.n_moved + ph.n_moving) / d, 1),
        "preview_delivered_pct": round(100 * ph.n_moving / ph.previews_expected, 2) if ph.previews_expected else None,
        "expected_seq": expected_seq, "lost_seq": lost_seq, "dup_seq": dup_seq,
        "lost_versions": lost_ver, "dup_versions": dup_ver,
        "errors": dict(ph.errors), "disconnects_total": driver.disconnects,
        "client_cpu_pct": {"median": bw.median(client_cpu), "max": max(client_cpu, default=0.0)},
        "instances_cpu_pct": [{"median": bw.median(i.cpu), "max": max(i.cpu, default=0.0)} for i in driver.instances],
        "instances_rss_mb": [{"median": round(bw.median(i.rss), 1), "max": round(max(i.rss, default=0.0), 1)}
                             for i in driver.instances],
    }
    result["server_cpu_pct_total"] = round(sum(c["median"] for c in result["instances_cpu_pct"]), 1)
    result["server_rss_mb_total"] = round(sum(r["max"] for r in result["instances_rss_mb"]), 1)
    if db0 is not None and db1 is not None:
        cpu = sum(c - db0.cpu.get(pid, 0.0) for pid, c in db1.cpu.items())  # a new process counts whole
        moves = db1.versions - db0.versions
        result["db_cpu"] = {"core_pct": round(100 * cpu / (db1.at - db0.at), 1), "commits": moves,
                            "ms_per_commit": round(1000 * cpu / max(1, moves), 4)}
    if tf:
        result["server_metrics"] = bw.metrics_delta(before[0], after[0])
        result["server_counters"] = {k: v - before[1].get(k, 0.0) for k, v in after[1].items()
                                     if v - before[1].get(k, 0.0) > 0}
    driver.phase = None
    m = result["moved_ms"]
    console.print(f"  moved p50/p95/p99 {m['p50']:.1f}/{m['p95']:.1f}/{m['p99']:.1f} ms, "
                  f"{result['deliveries_per_s']} deliveries/s, lost {lost_seq}/{expected_seq} dup {dup_seq}"
                  f"{f' (version gaps {lost_ver})' if tf else ''}, server CPU {result['server_cpu_pct_total']} %, "
                  f"client CPU {result['client_cpu_pct']['median']:.0f} %, unanswered {unanswered}, "
                  f"errors {result['errors'] or 0}"
                  + (f", database CPU {result['db_cpu']['core_pct']} % = {result['db_cpu']['ms_per_commit']:.3f} ms"
                     f" per commit ({result['db_cpu']['commits']} commits), load {os.getloadavg()[0]:.1f}"
                     if "db_cpu" in result else ""))
    return result


@dataclass
class DbCpu:
    at: float  # perf_counter
    cpu: dict[int, float]  # pid -> CPU seconds
    versions: int  # the sum of the rooms' versions: one per committed event


async def db_cpu(database_url: str) -> DbCpu:
    """CPU seconds so far of the PostgreSQL processes serving the run's database, and its commits."""
    import asyncpg

    tick = os.sysconf("SC_CLK_TCK")
    conn = await asyncpg.connect(database_url)
    try:
        pids = [r[0] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
        versions = int(await conn.fetchval("SELECT coalesce(sum(version), 0) FROM game_rooms"))
    finally:
        await conn.close()
    return DbCpu(time.perf_counter(), {pid: c for pid in pids if (c := _proc_cpu_s(pid, tick)) is not None}, versions)


def _proc_cpu_s(pid: int, tick: int) -> float | None:
    """utime + stime of a process (a /proc read: no disk, nothing to wait for)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / tick


# ---------------------------------------------------------------- report

def med(results: list[dict[str, Any]], path: str) -> float:
    vals = []
    for r in results:
        v: Any = r
        for part in path.split("."):
            v = v[part]
        vals.append(float(v))
    return bw.median(vals)


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(r["instances"], r["mode"]) for r in results})
    for k, mode in keys:
        row: dict[str, Any] = {"instances": k, "mode": mode}
        for server in ("tableforge", "socketio"):
            rs = [r for r in results if r["instances"] == k and r["mode"] == mode and r["server"] == server]
            if not rs:
                continue
            kind = "moving_ms" if mode == "preview" else "moved_ms"
            row[server] = {
                "runs": len(rs),
                **{f"moved_{q}": med(rs, f"moved_ms.{q}") for q in ("p50", "p95", "p99")},
                **{f"moving_{q}": med(rs, f"moving_ms.{q}") for q in ("p50", "p95", "p99")},
                "primary": kind,
                "deliveries_per_s": med(rs, "deliveries_per_s"),
                "moved_per_s": med(rs, "moved_per_s"),
                "lost_seq": sum(r["lost_seq"] for r in rs), "dup_seq": sum(r["dup_seq"] for r in rs),
                "lost_versions": sum(r["lost_versions"] or 0 for r in rs) if server == "tableforge" else None,
                "cpu_total": med(rs, "server_cpu_pct_total"),
                "db_ms_per_commit": med(rs, "db_cpu.ms_per_commit") if server == "tableforge" else None,
                "db_core_pct": med(rs, "db_cpu.core_pct") if server == "tableforge" else None,
                "rss_per_instance_max": max(x["max"] for r in rs for x in r["instances_rss_mb"]),
                # what the connected players add: RSS during the phase minus RSS before any joined
                "rss_growth_per_1000": bw.median([(r["server_rss_mb_total"] - r["idle_rss_mb_total"]) * 1000
                                                  / r["players"] for r in rs]),
                "client_cpu": med(rs, "client_cpu_pct.median"),
                "ack_p95": med(rs, "ack_ms.p95"),
                "preview_delivered_pct": (med(rs, "preview_delivered_pct") if mode == "preview" else None),
            }
        rows.append(row)
    return rows


def print_summary(rows: list[dict[str, Any]]) -> None:
    table = Table(title="scale-out: tableforge vs python-socketio (medians over repeats; ratio = ours / socketio)")
    for col in ("K", "load", "server", "moved p50/p95/p99 ms", "preview p50/p95/p99 ms", "deliv/s",
                "lost/dup", "CPU % (sum K)", "RSS MB/inst max", "RSS MB added /1000 players", "client CPU %",
                "DB CPU % (ms/commit)"):
        table.add_column(col, justify="left" if col in ("load", "server") else "right")
    for row in rows:
        tf, sio = row.get("tableforge"), row.get("socketio")
        for name, s in (("tableforge", tf), ("socketio", sio)):
            if s is None:
                continue
            lost = f"{s['lost_seq']}/{s['dup_seq']}"
            if s["lost_versions"] is not None:
                lost += f" (gaps {s['lost_versions']})"
            prev = "-" if row["mode"] != "preview" else "/".join(f"{s[f'moving_{q}']:.1f}"
                                                                 for q in ("p50", "p95", "p99"))
            table.add_row(str(row["instances"]), row["mode"], name,
                          "/".join(f"{s[f'moved_{q}']:.1f}" for q in ("p50", "p95", "p99")), prev,
                          f"{s['deliveries_per_s']:.0f}", lost, f"{s['cpu_total']:.0f}",
                          f"{s['rss_per_instance_max']:.0f}", f"{s['rss_growth_per_1000']:.0f}",
                          f"{s['client_cpu']:.0f}",
                          "-" if s["db_ms_per_commit"] is None else
                          f"{s['db_core_pct']:.0f} ({s['db_ms_per_commit']:.3f})")
        if tf and sio:
            def ratio(a: float, b: float) -> str:
                return f"{a / b:.2f}" if b else "-"

            table.add_row("", "", "ratio ours/sio",
                          "/".join(ratio(tf[f"moved_{q}"], sio[f"moved_{q}"]) for q in ("p50", "p95", "p99")),
                          "-" if row["mode"] != "preview" else
                          "/".join(ratio(tf[f"moving_{q}"], sio[f"moving_{q}"]) for q in ("p50", "p95", "p99")),
                          ratio(tf["deliveries_per_s"], sio["deliveries_per_s"]), "",
                          ratio(tf["cpu_total"], sio["cpu_total"]), "", "", "", "")
    console.print(table)


# ---------------------------------------------------------------- main

def git_state() -> dict[str, Any]:
    """The code the servers ran: HEAD plus any uncommitted changes under src/ (the tree may be shared)."""
    def git(*a: str) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        return ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "src").splitlines()]
    return {"head": git("rev-parse", "--short", "HEAD"), "head_subject": git("log", "-1", "--format=%s"),
            "uncommitted_src": dirty}


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="tableforge-bench-scaleout-"))
    db_name: str | None = None
    instances: list[Instance] = []
    drivers: list[Driver] = []
    results: list[dict[str, Any]] = []
    idle_rss: dict[str, float] = {}
    tag = uuid.uuid4().hex[:8]
    k = args.instances
    try:
        players = [Player(i, i % args.rooms, (i // args.rooms) % k) for i in range(args.players)]
        if "tableforge" in args.servers:
            db_name, database_url = await bw.create_database(f"tableforge_bso_{tag}")
            args.database_url = database_url
            tf_inst = await start_tableforge(k, database_url, f"bso{tag}", work, args.db_pool_max)
            idle_rss["tableforge"] = total_rss_mb(tf_inst)  # started, no player yet
            instances += tf_inst
            tf = TableForgeDriver(players, tf_inst, args.rooms)
            drivers.append(tf)
            await tf.setup()
        if "socketio" in args.servers:
            sio_inst = await start_socketio(k, f"sio-bench-{tag}", work)
            idle_rss["socketio"] = total_rss_mb(sio_inst)
            instances += sio_inst
            sio_players = [Player(p.index, p.room, p.inst) for p in players]
            sio = SocketIODriver(sio_players, sio_inst, args.rooms, tag)
            drivers.append(sio)
            await sio.setup()
        await quiesce(instances)  # let the setup fan-out settle
        # all "moves" phases first, then the "preview" ones (a collapsed server must not spoil the moves
        # numbers); servers interleaved, order alternating per repeat; quiet CPU before every phase
        for mode in args.modes:
            for rep in range(args.repeat if mode == "moves" else args.preview_repeat):
                for driver in drivers if rep % 2 == 0 else drivers[::-1]:
                    res = await run_phase(driver, mode, args)
                    res["repeat"] = rep
                    res["idle_rss_mb_total"] = round(idle_rss[res["server"]], 1)
                    res["players"] = args.players
                    res["quiesce_s"], res["quiesce_timed_out"] = await quiesce(instances)
                    results.append(res)
        for driver in drivers:
            await driver.close()
        stop_all(instances)
        return {"git": git_state(),
                "config": {"instances": k, "players": args.players, "rooms": args.rooms, "duration": args.duration,
                           "ramp": args.ramp, "preview_rate": args.preview_rate, "repeat": args.repeat,
                           "move_rate": args.move_rate, "load_average": os.getloadavg(),
                           "preview_repeat": args.preview_repeat,
                           "db_pool_max": args.db_pool_max, "servers": args.servers},
                "results": results, "summary": summarize(results),
                "log_problems": log_problems(instances)[:20],
                "setup_errors": drivers[0].setup_errors if drivers and isinstance(drivers[0], TableForgeDriver)
                else {}}
    except BaseException:
        if results:
            console.print_json(json.dumps(results))
        for line in log_problems(instances)[-20:]:
            console.print(line, markup=False, highlight=False)
        raise
    finally:
        for driver in drivers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(driver.close(), 10)
        stop_all(instances)
        if db_name is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bw.drop_database(db_name), 30)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(drop_redis_namespace(f"bso{tag}"), 30)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=2, help="K instances of each server")
    parser.add_argument("--players", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--duration", type=float, default=25.0, help="measured seconds per phase")
    parser.add_argument("--ramp", type=float, default=5.0, help="unmeasured seconds of load before each phase")
    parser.add_argument("--preview-rate", type=int, default=10, help="preview moves per player per second")
    parser.add_argument("--move-rate", type=float, default=1.0, help="commits per player per second")
    parser.add_argument("--modes", default="moves,preview", help="comma list of moves,preview")
    parser.add_argument("--servers", default="tableforge,socketio", help="comma list of tableforge,socketio")
    parser.add_argument("--repeat", type=int, default=1, help="repeat the moves phases (interleaved) this many times")
    parser.add_argument("--preview-repeat", type=int, default=1, help="repeat the preview phases this many times")
    parser.add_argument("--db-pool-max", type=int, default=0,
                        help="TABLEFORGE_DB_POOL_MAX per instance (default: min(20, 60 // K), PG max_connections=100)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--timeout", type=float, default=1500.0, help="hard cap on the whole run (s)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    args.servers = [s for s in args.servers.split(",") if s]
    if not (1 <= args.instances <= 8 and 2 <= args.rooms <= args.players <= 5000 and 0 < args.duration <= 120
            and 0 <= args.ramp <= 30 and 0 <= args.preview_rate <= 30 and 0.1 <= args.move_rate <= 10
            and 1 <= args.repeat <= 5 and 1 <= args.preview_repeat <= 5
            and set(args.modes) <= {"moves", "preview"} and set(args.servers) <= {"tableforge", "socketio"}
            and args.modes and args.servers):
        parser.error("need 1 <= instances <= 8, 2 <= rooms <= players <= 5000, 0 < duration <= 120, ramp <= 30, "
                     "preview-rate <= 30, 0.1 <= move-rate <= 10, repeat <= 5, modes in moves,preview, "
                     "servers in tableforge,socketio")
    args.db_pool_max = args.db_pool_max or min(20, 60 // args.instances)
    random.seed(args.seed)
    def on_term(*_: Any) -> None:  # like Ctrl-C, once: a second signal must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(amain(args), args.timeout)

    try:
        out = asyncio.run(bounded())
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: servers stopped and database dropped[/yellow]")
        return 130
    print_summary(out["summary"])
    for r in out["results"]:
        if r.get("server_metrics"):
            t = Table(title=f"tableforge /metrics over the measured window, K={r['instances']} {r['mode']} "
                            f"(repeat {r['repeat']}, summed over instances, bucket-interpolated ms)")
            for col in ("series", "count", "mean", "p50", "p95", "p99"):
                t.add_column(col, justify="left" if col == "series" else "right")
            for key, s in sorted(r["server_metrics"].items()):
                t.add_row(key, f"{s['count']:.0f}", *(f"{s[q]:.2f}" for q in ("mean_ms", "p50_ms", "p95_ms", "p99_ms")))
            console.print(t)
            if r.get("server_counters"):
                console.print("counters:", json.dumps(r["server_counters"]), highlight=False)
    g = out["git"]
    console.print(f"code: {g['head']} {g['head_subject'][:80]}; uncommitted src files: {len(g['uncommitted_src'])}",
                  highlight=False)
    if out["setup_errors"]:
        console.print("setup errors (retried):", json.dumps(out["setup_errors"]), highlight=False)
    for line in out["log_problems"]:
        console.print("[yellow]log:[/yellow] " + line, highlight=False)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

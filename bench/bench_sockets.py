"""Memory of many joined WebSockets on one instance, with heartbeats (issue 17).

Run: .venv/bin/python bench/bench_sockets.py [--mode embedded|scaleout] [--steps 1000 5000 10000]
     [--room-size 10] [--users 100] [--workers 4] [--heartbeat 10] [--deflate]
     [--variant NAME:ENV=VALUE,ENV=VALUE ...] [--repeat R] [--python PATH] [--json FILE]
     [--census DIR [--frames F]] [--pg postgresql://postgres@127.0.0.1:5432] [--redis redis://127.0.0.1:6379/0]

Seeded once over HTTP by a `tableforge serve` (embedded: a fresh data directory; scale-out: a temporary
PostgreSQL database, dropped after; `tableforge migrate` first): `--users` accounts and one room per
`--room-size` sockets of the largest step, each room with `--room-size` distinct members. Then for each
variant (`--variant`: instance settings to compare; `--repeat R` runs them interleaved, A B A B), a
`tableforge serve` on a copy of that database (a copied data directory; `CREATE DATABASE … TEMPLATE`
and a new Redis namespace), with the socket caps per user and per address lifted and the maintenance
jobs off. The sockets are opened from `--workers` client processes (aiohttp; permessage-deflate
offered only with `--deflate`, as browsers do), each from its own loopback address (127.0.0.2, .3,
...), with RLIMIT_NOFILE raised to the hard limit in every process. Every socket sends the
protocol's `ping` every `--heartbeat` seconds (spread evenly) and answers the server's WebSocket pings.

For each step N: open the new sockets (idle: authenticated, in no room), read the instance's RSS once
it is stable (< 1 % change over 3 s); join them (`join`, wait for every ack), read again. Printed per
step: VmRSS and RssAnon, and the KB each new socket added idle and then by joining; at the last step,
`/ready` latency (20 probes, one new HTTP connection each, 0.25 s apart, while the heartbeats run):
median and p95. The base is the instance after start-up and 2 s of quiet, before any socket. Then a
summary per variant (medians over the repeats).

`--census DIR`: on each phase the instance dumps a census of the objects the garbage collector tracks
(count and shallow size per type, DIR/<variant>-<run>/census-K.json: 1 base, then idle and joined per
step) and, with `--frames F`, a tracemalloc snapshot from the base on (slow: its RSS is not comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench_idle_rss import cpu_model, free_port, psql, status_kb, wait_ready


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---------------------------------------------------------------- client worker (its own process)

async def worker_main() -> None:
    """Commands on stdin (one JSON object a line), one JSON answer a line on stdout."""
    import aiohttp

    raise_nofile()
    source, heartbeat, deflate = sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)  # a command lists up to thousands of URLs
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    connector = aiohttp.TCPConnector(limit=0, local_addr=(source, 0), force_close=True)
    session = aiohttp.ClientSession(connector=connector)
    sockets: list[aiohttp.ClientWebSocketResponse | None] = []  # None: failed to open
    waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
    stats = {"pongs": 0, "errors": 0, "closed": 0, "join_timeouts": 0}
    codes: Counter[str] = Counter()  # error codes the joins got
    tasks: set[asyncio.Task[None]] = set()

    async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            kind = frame.get("type")
            if kind == "pong":
                stats["pongs"] += 1
            elif kind in ("ack", "error") and isinstance(frame.get("id"), str) and frame["id"] in waiting:
                if kind == "error":
                    stats["errors"] += 1
                waiting.pop(frame["id"]).set_result(frame)
        stats["closed"] += 1

    async def beat(ws: aiohttp.ClientWebSocketResponse, offset: float) -> None:
        await asyncio.sleep(offset)
        while not ws.closed:
            await ws.send_str('{"type":"ping"}')
            await asyncio.sleep(heartbeat)

    async def open_one(url: str, index: int, gate: asyncio.Semaphore) -> aiohttp.ClientWebSocketResponse | None:
        async with gate:
            try:
                ws = await session.ws_connect(url, compress=15 if deflate else 0, autoping=True,
                                              heartbeat=None, max_msg_size=2 ** 22, timeout=aiohttp.ClientWSTimeout(
                                                  ws_receive=None, ws_close=10))
            except Exception:
                return None
        for coro in (read(ws), beat(ws, heartbeat * (index % 97) / 97)):
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return ws

    async def join_one(index: int, room_id: str, gate: asyncio.Semaphore) -> bool:
        async with gate:
            msg_id = f"j{index}"
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            waiting[msg_id] = fut
            ws = sockets[index]
            if ws is None:
                return False
            await ws.send_str(json.dumps({"type": "join", "room_id": room_id, "id": msg_id}))
            try:
                reply = await asyncio.wait_for(fut, 300)
            except TimeoutError:
                waiting.pop(msg_id, None)
                stats["join_timeouts"] += 1
                return False
            if reply.get("type") != "ack":
                codes[str(reply.get("code"))] += 1
            return bool(reply.get("type") == "ack")

    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["op"] == "open":
            gate = asyncio.Semaphore(64)
            before = len(sockets)
            opened = await asyncio.gather(*(open_one(url, before + k, gate) for k, url in enumerate(cmd["urls"])))
            sockets.extend(opened)  # in the order asked: index first + k is the k-th url
            ok = sum(ws is not None for ws in opened)
            answer: dict[str, Any] = {"opened": ok, "failed": len(opened) - ok, "first": before}
        elif cmd["op"] == "join":
            gate = asyncio.Semaphore(16)
            oks = await asyncio.gather(*(join_one(i, room, gate) for i, room in cmd["pairs"]))
            answer = {"joined": sum(oks), "failed": len(oks) - sum(oks), "codes": dict(codes),
                      "timeouts": stats["join_timeouts"]}
        elif cmd["op"] == "stats":
            answer = {**stats, "open": sum(ws is not None and not ws.closed for ws in sockets)}
        else:
            break
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for ws in sockets:
        if ws is not None:
            await ws.close()
    await session.close()


class Worker:
    def __init__(self, index: int, heartbeat: float, deflate: bool) -> None:
        self.source = f"127.0.0.{index + 2}"
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker-process", self.source, str(heartbeat),
                                      "1" if deflate else "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.count = 0  # sockets opened by this worker (its indices 0..count-1)

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"client worker {self.source} exited")
        return dict(json.loads(line))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.send({"op": "quit"})
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def all_do(workers: list[Worker], cmds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for w, cmd in zip(workers, cmds, strict=True):
        w.send(cmd)
    return [w.answer() for w in workers]


# ---------------------------------------------------------------- the instance

def seed(base: str, users: int, rooms: int, room_size: int) -> tuple[list[str], list[list[int]], list[str]]:
    """`users` accounts, `rooms` rooms of `room_size` distinct members. Returns the tokens, each room's
    member indices, and the room ids."""
    import httpx

    async def run() -> tuple[list[str], list[list[int]], list[str]]:
        async with httpx.AsyncClient(base_url=base, timeout=60,
                                     limits=httpx.Limits(max_connections=16)) as http:
            gate = asyncio.Semaphore(16)

            async def call(method: str, path: str, token: str | None, body: dict[str, Any]) -> dict[str, Any]:
                async with gate:
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    for attempt in range(3):  # a kept-alive connection the server closed as it was reused
                        try:
                            r = await http.request(method, path, json=body, headers=headers)
                            break
                        except (httpx.ReadError, httpx.RemoteProtocolError):
                            if attempt == 2:
                                raise
                    if r.status_code >= 300:
                        raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
                    return dict(r.json())

            tag = uuid.uuid4().hex[:6]
            t0 = time.monotonic()
            regs = await asyncio.gather(*(call("POST", "/api/auth/register", None, {
                "username": f"s{tag}{i}", "password": "bench-password-1"}) for i in range(users)))
            tokens = [str(r["token"]) for r in regs]
            print(f"  registered {users} users in {time.monotonic() - t0:.1f} s", flush=True)
            groups = max(1, users // room_size)
            members = [[(r % groups) * room_size + (r // groups + k) % room_size for k in range(room_size)]
                       for r in range(rooms)]
            made = await asyncio.gather(*(call("POST", "/api/rooms", tokens[m[0]], {"name": f"room {r}"})
                                          for r, m in enumerate(members)))
            print(f"  made {rooms} rooms at {time.monotonic() - t0:.1f} s", flush=True)
            await asyncio.gather(*(call("POST", "/api/rooms/join", tokens[u], {"invite_code": room["invite_code"]})
                                   for room, m in zip(made, members, strict=True) for u in m[1:]))
            return tokens, members, [str(room["id"]) for room in made]

    return asyncio.run(run())


def stable_rss(pid: int, quiet: float = 3.0, timeout: float = 60.0) -> dict[str, int]:
    """VmRSS once it moved less than 1 % over `quiet` seconds (the server finished the phase's work)."""
    deadline = time.monotonic() + timeout
    last = status_kb(pid, "VmRSS")
    while True:
        time.sleep(quiet)
        now = status_kb(pid, "VmRSS")
        if abs(now - last) <= last / 100 or time.monotonic() > deadline:
            return {"rss": now, "anon": status_kb(pid, "RssAnon")}
        last = now


def ready_latency(base: str, probes: int = 20) -> list[float]:
    import http.client

    host, port = base.removeprefix("http://").split(":")
    out = []
    for _ in range(probes):
        started = time.perf_counter()
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", "/ready")
        resp = conn.getresponse()
        resp.read()
        conn.close()
        out.append((time.perf_counter() - started) * 1000)
        if resp.status != 200:
            raise RuntimeError(f"/ready answered {resp.status}")
        time.sleep(0.25)
    return out


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


TRACE_LAUNCHER = """
import gc, json, signal, sys, tracemalloc
from collections import Counter
out, frames, counter = sys.argv[1], int(sys.argv[3]), [0]
def dump(*_):
    if frames and not tracemalloc.is_tracing():  # traced from the base on: start-up and seeding are not
        tracemalloc.start(frames)
    counter[0] += 1
    census, sizes = Counter(), Counter()
    for obj in gc.get_objects():  # the objects the collector tracks (containers): how many, what size
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        census[name] += 1
        sizes[name] += sys.getsizeof(obj)
    with open(f"{out}/census-{counter[0]}.json", "w") as f:
        json.dump({"count": census, "size": sizes}, f)
    if frames:
        tracemalloc.take_snapshot().dump(f"{out}/snap-{counter[0]}.tracemalloc")
    open(f"{out}/done-{counter[0]}", "w").close()
signal.signal(signal.SIGUSR1, dump)
sys.argv = ["tableforge", "serve", "--port", sys.argv[2]]
from tableforge.cli import app
app()
"""


def snapshot(proc: subprocess.Popen[bytes], out: Path, label: str) -> None:
    count = len(list(out.glob("done-*")))
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 300
    while len(list(out.glob("done-*"))) <= count and time.monotonic() < deadline:
        time.sleep(0.5)
    print(f"  census {count + 1}: {label}", flush=True)


class Instance:
    """Where a server's data lives: a data directory, and for scale-out a PostgreSQL database."""

    def __init__(self, args: argparse.Namespace, data: str, db: str | None) -> None:
        self.args, self.data, self.db = args, data, db

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {**os.environ, "TABLEFORGE_DATA_DIR": self.data, "TABLEFORGE_LOG_LEVEL": "WARNING",
               "TABLEFORGE_WS_MAX_PER_ADDRESS": "1000000", "TABLEFORGE_WS_MAX_PER_USER": "1000000",
               "TABLEFORGE_WS_RATE_PER_SECOND": "1000", "TABLEFORGE_WS_RATE_BURST": "1000",
               # the maintenance jobs (start-up catalog warm-up, periodic pruning) are not what is measured
               "TABLEFORGE_MAINTENANCE_ENABLED": "false", "TABLEFORGE_MAINTENANCE_WARM_CATALOG_SCHEDULE": "off"}
        for key in ("TABLEFORGE_DATABASE_URL", "TABLEFORGE_REDIS_URL", "TABLEFORGE_REDIS_NAMESPACE"):
            env.pop(key, None)
        if self.db is not None:
            env |= {"TABLEFORGE_DATABASE_URL": f"{self.args.pg}/{self.db}", "TABLEFORGE_REDIS_URL": self.args.redis,
                    "TABLEFORGE_REDIS_NAMESPACE": f"sk{uuid.uuid4().hex[:8]}"}
        return env | extra

    def start(self, extra: dict[str, str], port: int, trace: Path | None) -> subprocess.Popen[bytes]:
        if trace is not None:
            trace.mkdir(parents=True, exist_ok=True)
            cmd = [self.args.python, "-c", TRACE_LAUNCHER, str(trace), str(port), str(self.args.frames)]
        else:
            cmd = [self.args.python, "-m", "tableforge", "serve", "--port", str(port)]
        log = Path(self.data) / "server.log"
        proc = subprocess.Popen(cmd, env=self.env(extra), stdout=log.open("wb"), stderr=subprocess.STDOUT)
        wait_ready(proc, f"http://127.0.0.1:{port}/ready", log)
        return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def measure(args: argparse.Namespace, name: str, extra: dict[str, str], seeded: Instance, seed_data: tuple[
        list[str], list[list[int]], list[str]], trace: Path | None) -> dict[str, Any]:
    """One instance on a copy of the seeded database: the steps, then `/ready` at the last."""
    tokens, members, room_ids = seed_data
    steps = sorted(args.steps)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="tf-sockets-") as data:
        shutil.copytree(seeded.data, data, dirs_exist_ok=True)
        db = None
        if seeded.db is not None:
            db = f"tf_sockets_{uuid.uuid4().hex[:10]}"
            psql(args.pg, f"CREATE DATABASE {db} TEMPLATE {seeded.db}")
        instance = Instance(args, data, db)
        workers: list[Worker] = []
        proc = instance.start(extra, port, trace)
        try:
            workers = [Worker(i, args.heartbeat, args.deflate) for i in range(args.workers)]
            time.sleep(2)
            base_rss = stable_rss(proc.pid)
            if trace is not None:
                snapshot(proc, trace, "base")
            print(f"[{name}] {'sockets':>8s} {'phase':7s} {'VmRSS MB':>9s} {'anon MB':>8s} {'KB/new socket':>14s}",
                  flush=True)
            print(f"[{name}] {0:8d} {'base':7s} {base_rss['rss'] / 1024:9.1f} {base_rss['anon'] / 1024:8.1f}",
                  flush=True)
            rows: list[dict[str, Any]] = []
            prev, prev_rss = 0, base_rss
            ws_url = f"ws://127.0.0.1:{port}/ws?token="
            for n in steps:
                new = list(range(prev, n))
                plan: list[list[int]] = [[] for _ in workers]
                for i in new:
                    plan[i % len(workers)].append(i)
                answers = all_do(workers, [{"op": "open", "urls": [
                    ws_url + tokens[members[i // args.room_size][i % args.room_size]] for i in mine]}
                    for mine in plan])
                failed = sum(a["failed"] for a in answers)
                idle = stable_rss(proc.pid)
                if trace is not None:
                    snapshot(proc, trace, f"{n} idle")
                joins = [{"op": "join", "pairs": [[a["first"] + k, room_ids[i // args.room_size]]
                                                  for k, i in enumerate(mine)]}
                         for mine, a in zip(plan, answers, strict=True)]
                join_answers = all_do(workers, joins)
                join_failed = sum(a["failed"] for a in join_answers)
                why: Counter[str] = Counter()
                for a in join_answers:
                    why.update(a["codes"])
                    why["timed out (300 s)"] += a["timeouts"]
                joined = stable_rss(proc.pid)
                if trace is not None:
                    snapshot(proc, trace, f"{n} joined")
                k_idle = (idle["rss"] - prev_rss["rss"]) / len(new)
                k_join = (joined["rss"] - idle["rss"]) / len(new)
                print(f"[{name}] {n:8d} {'idle':7s} {idle['rss'] / 1024:9.1f} {idle['anon'] / 1024:8.1f} "
                      f"{k_idle:14.1f}" + (f"  ({failed} failed to open)" if failed else ""), flush=True)
                print(f"[{name}] {n:8d} {'joined':7s} {joined['rss'] / 1024:9.1f} {joined['anon'] / 1024:8.1f} "
                      f"{k_join:14.1f}" + (f"  ({join_failed} joins failed: {dict(+why)})" if join_failed else ""),
                      flush=True)
                rows.append({"n": n, "idle_kb": idle["rss"], "joined_kb": joined["rss"], "kb_idle": k_idle,
                             "kb_join": k_join, "failed": failed, "join_failed": join_failed})
                prev, prev_rss = n, joined
            probes = ready_latency(base)
            stats = all_do(workers, [{"op": "stats"} for _ in workers])
            per_socket = (prev_rss["rss"] - base_rss["rss"]) / steps[-1]
            result = {"name": name, "env": extra, "base_kb": base_rss["rss"], "rows": rows, "ready_ms": probes,
                      "kb_per_socket": per_socket, "open": sum(s["open"] for s in stats),
                      "pongs": sum(s["pongs"] for s in stats), "errors": sum(s["errors"] for s in stats)}
            print(f"[{name}] at {steps[-1]}: {prev_rss['rss'] / 1024:.1f} MB, {per_socket:.1f} KB per joined socket "
                  f"over the base; /ready median {statistics.median(probes):.1f} ms, p95 {p95(probes):.1f} ms, "
                  f"max {max(probes):.1f} ms; client: {result['open']} open, {result['pongs']} pongs, "
                  f"{result['errors']} errors", flush=True)
            if result["open"] < steps[-1] or any(r["failed"] or r["join_failed"] for r in rows):
                print(f"[{name}] sockets lost or refused; the instance's log ends with:\n"
                      + "\n".join((Path(data) / "server.log").read_text(errors="replace").splitlines()[-30:]))
            return result
        finally:
            for w in workers:
                w.stop()
            stop(proc)
            if db is not None:
                psql(args.pg, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def run(args: argparse.Namespace) -> None:
    hard = raise_nofile()
    variants: list[tuple[str, dict[str, str]]] = []
    for spec in args.variant or ["default"]:
        name, _, settings = spec.partition(":")
        variants.append((name, dict(item.partition("=")[::2] for item in settings.split(",") if item)))
    rooms = -(-max(args.steps) // args.room_size)
    with tempfile.TemporaryDirectory(prefix="tf-sockets-seed-") as data:
        seed_db = None
        if args.mode == "scaleout":
            seed_db = f"tf_sockets_seed_{uuid.uuid4().hex[:8]}"
            psql(args.pg, f"CREATE DATABASE {seed_db}")
        seeded = Instance(args, data, seed_db)
        try:
            subprocess.run([args.python, "-m", "tableforge", "migrate"], env=seeded.env({}), check=True,
                           capture_output=True)
            port = free_port()
            proc = seeded.start({"TABLEFORGE_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000"}, port, None)
            started = time.monotonic()
            try:
                seed_data = seed(f"http://127.0.0.1:{port}", args.users, rooms, args.room_size)
            finally:
                stop(proc)
            (Path(data) / "server.log").unlink(missing_ok=True)
            print(f"seeded {args.users} users, {rooms} rooms of {args.room_size} in "
                  f"{time.monotonic() - started:.1f} s; RLIMIT_NOFILE {hard}", flush=True)
            results = []
            for rep in range(args.repeat):
                for name, extra in variants:
                    trace = Path(args.census) / f"{name}-{rep}" if args.census else None
                    results.append(measure(args, name, extra, seeded, seed_data, trace))
        finally:
            if seed_db is not None:
                psql(args.pg, f"DROP DATABASE IF EXISTS {seed_db} WITH (FORCE)")
    print(f"\nsummary (medians over {args.repeat} run(s) each; KB per socket over the instance's base):")
    print(f"{'variant':16s} " + " ".join(f"{f'{n} idle/joined MB':>22s}" for n in sorted(args.steps))
          + f" {'KB/socket':>10s} {'/ready median/p95 ms':>21s}")
    for name, _ in variants:
        mine = [r for r in results if r["name"] == name]
        cells = []
        for i, _n in enumerate(sorted(args.steps)):
            idle = statistics.median(r["rows"][i]["idle_kb"] for r in mine) / 1024
            joined = statistics.median(r["rows"][i]["joined_kb"] for r in mine) / 1024
            cells.append(f"{f'{idle:.1f} / {joined:.1f}':>22s}")
        per = statistics.median(r["kb_per_socket"] for r in mine)
        med = statistics.median(statistics.median(r["ready_ms"]) for r in mine)
        tail = statistics.median(p95(r["ready_ms"]) for r in mine)
        print(f"{name:16s} " + " ".join(cells) + f" {per:10.1f} {f'{med:.1f} / {tail:.1f}':>21s}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker-process":
        asyncio.run(worker_main())
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["embedded", "scaleout"], default="embedded")
    ap.add_argument("--steps", type=int, nargs="+", default=[1000, 5000, 10000])
    ap.add_argument("--room-size", type=int, default=10)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--workers", type=int, default=4, help="client processes")
    ap.add_argument("--heartbeat", type=float, default=10.0, help="seconds between a socket's `ping`s")
    ap.add_argument("--deflate", action="store_true", help="offer permessage-deflate, as browsers do")
    ap.add_argument("--variant", action="append", help="NAME:ENV=VALUE,ENV=VALUE (an instance setting to compare)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each variant, interleaved (A B A B)")
    ap.add_argument("--python", default=sys.executable, help="interpreter with the tableforge to measure")
    ap.add_argument("--census", metavar="DIR", help="dump the instance's objects (and tracemalloc) per phase")
    ap.add_argument("--frames", type=int, default=0, help="with --census: tracemalloc frames (0: no tracemalloc)")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    print(f"date {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, CPU {cpu_model()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, mode {args.mode}, deflate offered: {args.deflate}, "
          f"variants {args.variant or ['default']}", flush=True)
    run(args)


if __name__ == "__main__":
    main()

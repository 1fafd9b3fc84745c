"""CPU per HTTP request on the load test's hot routes, through a real `tableforge serve`.

Run: nice -n 19 .venv/bin/python bench/bench_http.py [--mode embedded|scale-out] [--rate 150] [--seconds 8]
        [--concurrency 16] [--variant NAME=SRC_DIR ...] [--rounds 2] [--profile-dir DIR]

Each variant is a source tree (`src` of a checkout; `git archive main src | tar -x -C /tmp/http-before`
gives the `before`): the server runs from it (PYTHONPATH), with a fresh data dir (embedded: SQLite;
scale-out: a temporary PostgreSQL database and a Redis namespace, dropped at the end). Variants run
interleaved, A B A B, `--rounds` times. Each run seeds the same shape (12 users, 6 rooms of 4 members
with one 16x16 PNG asset and 3 tokens each, and the catalog the server seeds), then drives one route at
a time at a fixed rate (open loop: request i is sent at i/rate, whatever the answers) from this
process with `--concurrency` aiohttp sessions, as the load test does:

- `snapshot`: GET /api/rooms/{id} by a member (no If-None-Match, as the load test's players);
- `players`: GET /api/rooms/{id}/players;
- `systems`: GET /api/systems?search=..&page=..&limit=20 (the load test's words and pages);
- `system`: GET /api/systems/{id};
- `asset`: GET /assets/{sha}.png, half of them with the If-None-Match of the last answer (304);
- `mix`: the five in the load test's proportions (1277:774:954:613:1247 per 48 s).

Reported per route: the server process's CPU time (psutil user+system delta over the phase, after a
1 s warm-up at the same rate) less its idle CPU over the same time (measured for 6 s with no request
after seeding: timers, heartbeats), divided by the requests answered ("raw": without the idle
subtraction), and latency p50/p95 measured by the client from each request's due time. Medians over
rounds per variant, and after/before ratios of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
SEARCH_WORDS = ("dragon", "space", "horror", "fantasy", "dice", "quest", "d20", "mystery", "", "")
ROUTES = ("snapshot", "players", "systems", "system", "asset", "mix")
MIX_WEIGHTS = {"snapshot": 1277, "players": 774, "systems": 954, "system": 613, "asset": 1247}


def png(seed: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (seed * 40 % 256, 120, 60)).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class World:
    users: list[dict[str, str]] = field(default_factory=list)
    rooms: list[dict[str, Any]] = field(default_factory=list)  # id, members (user idx), asset_url
    systems: list[str] = field(default_factory=list)


def seed(base: str) -> World:
    world = World()
    with httpx.Client(base_url=base, timeout=60) as http:
        for i in range(12):
            r = http.post("/api/auth/register", json={"username": f"hb{uuid.uuid4().hex[:10]}",
                                                      "password": "pw-bench-1"})
            r.raise_for_status()
            http.cookies.clear()
            world.users.append({"h": f"Bearer {r.json()['token']}", "i": str(i)})
        for i in range(6):
            members = [(i * 2 + k) % 12 for k in range(4)]
            gm = {"Authorization": world.users[members[0]]["h"]}
            room = http.post("/api/rooms", headers=gm, json={"name": f"R{i}"}).json()
            for m in members[1:]:
                http.post("/api/rooms/join", headers={"Authorization": world.users[m]["h"]},
                          json={"invite_code": room["invite_code"]}).raise_for_status()
            asset = http.post(f"/api/rooms/{room['id']}/assets", headers=gm,
                              files={"file": ("a.png", png(i), "image/png")}).json()
            for t in range(3):
                http.post(f"/api/rooms/{room['id']}/tokens", headers=gm,
                          json={"asset_id": asset["id"], "x": t, "y": t}).raise_for_status()
            world.rooms.append({"id": room["id"], "members": members, "asset_url": asset["url"]})
        catalog = http.get("/api/systems", params={"limit": 100}).json()["systems"]
        world.systems = [s["id"] for s in catalog]
    return world


Request = tuple[str, str, dict[str, str]]  # route, path, headers


def chooser(world: World, route: str, rng: random.Random, etags: dict[str, str]) -> Callable[[], Request]:
    names = list(MIX_WEIGHTS)
    weights = list(MIX_WEIGHTS.values())

    def one(kind: str) -> Request:
        room = rng.choice(world.rooms)
        auth = {"Authorization": world.users[rng.choice(room["members"])]["h"]}
        if kind == "snapshot":
            return kind, f"/api/rooms/{room['id']}", auth
        if kind == "players":
            return kind, f"/api/rooms/{room['id']}/players", auth
        if kind == "systems":
            return kind, f"/api/systems?search={rng.choice(SEARCH_WORDS)}&page={rng.choice((1, 1, 1, 2))}&limit=20", {}
        if kind == "system":
            return kind, f"/api/systems/{rng.choice(world.systems)}", {}
        url = room["asset_url"]
        headers = {"If-None-Match": etags[url]} if url in etags and rng.random() < 0.5 else {}
        return kind, url, headers

    if route == "mix":
        return lambda: one(rng.choices(names, weights)[0])
    return lambda: one(route)


def idle_rate(proc: psutil.Process, seconds: float) -> float:
    """The server's CPU seconds per second with no request: its timers, heartbeats and maintenance.
    Subtracted from each phase, so that a request's figure is what the request itself costs."""
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    return ((after.user - before.user) + (after.system - before.system)) / seconds


async def drive(base: str, world: World, route: str, rate: float, seconds: float, concurrency: int,
                proc: psutil.Process, idle: float, warmup: float = 1.0) -> dict[str, Any]:
    """Open loop at `rate`/s: warm-up, then the measured window (CPU delta of `proc`)."""
    rng = random.Random(7)
    etags: dict[str, str] = {}
    pick = chooser(world, route, rng, etags)
    latencies: dict[str, list[float]] = {}
    statuses: dict[str, int] = {}
    measuring = False
    queue: asyncio.Queue[tuple[Request, float] | None] = asyncio.Queue(maxsize=10_000)

    async def worker(session: aiohttp.ClientSession) -> None:
        while (item := await queue.get()) is not None:
            (kind, path, headers), due = item
            queue.task_done()
            async with session.get(base + path, headers=headers) as r:
                await r.read()
                if kind == "asset" and r.status == 200:
                    etags[path] = r.headers.get("etag", "")
            if measuring:
                latencies.setdefault(kind, []).append(time.perf_counter() - due)
                key = f"{kind}:{r.status}"
                statuses[key] = statuses.get(key, 0) + 1

    async def pace(duration: float) -> int:
        start = time.perf_counter()
        n = int(duration * rate)
        for i in range(n):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await queue.put((pick(), due))
        return n

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
        await pace(warmup)
        await queue.join()
        await asyncio.sleep(0.3)  # the last warm-up answers
        measuring = True
        before = proc.cpu_times()
        t0 = time.perf_counter()
        await pace(seconds)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
        after = proc.cpu_times()
        wall = time.perf_counter() - t0
    cpu = (after.user - before.user) + (after.system - before.system)
    answered = sum(statuses.values())
    everything = sorted(x for v in latencies.values() for x in v)
    return {"cpu_s": cpu, "requests": answered, "wall": wall, "statuses": statuses,
            "raw_cpu_ms_per_request": 1000 * cpu / max(1, answered),
            "cpu_ms_per_request": 1000 * max(0.0, cpu - idle * wall) / max(1, answered),
            "p50_ms": 1000 * everything[len(everything) // 2] if everything else 0.0,
            "p95_ms": 1000 * everything[int(len(everything) * 0.95)] if everything else 0.0}


class Server:
    def __init__(self, src: str, mode: str, port: int) -> None:
        self.src, self.mode, self.port = src, mode, port
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-http-"))
        self.db_name: str | None = None
        self.namespace = f"bh{uuid.uuid4().hex[:8]}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": self.src, "TABLEFORGE_DATA_DIR": str(self.tmp),
               "TABLEFORGE_LOG_LEVEL": "WARNING", "TABLEFORGE_LOG_JSON": "true",
               "TABLEFORGE_DRAIN_NOTICE_SECONDS": "0", "TABLEFORGE_DRAIN_SECONDS": "0"}
        if self.mode == "scale-out":
            self.db_name = f"tableforge_bench_{uuid.uuid4().hex[:10]}"
            asyncio.run(_pg(f'CREATE DATABASE "{self.db_name}"'))
            env |= {"TABLEFORGE_DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + f"/{self.db_name}",
                    "TABLEFORGE_REDIS_URL": REDIS_URL, "TABLEFORGE_REDIS_NAMESPACE": self.namespace}
        self.proc = subprocess.Popen([sys.executable, "-m", "tableforge", "serve", "--port", str(self.port)],
                                     env=env, stdout=(self.tmp / "server.log").open("wb"), stderr=subprocess.STDOUT,
                                     cwd=self.tmp)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.tmp / "server.log").read_text()[-3000:])
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.db_name is not None:
            asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
            self.db_name = None
            asyncio.run(_drop_namespace(self.namespace))


async def _pg(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _drop_namespace(namespace: str) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=f"tableforge:{namespace}:*", count=1000)]
    for start in range(0, len(keys), 500):
        await client.unlink(*keys[start: start + 500])
    await client.aclose()


def run_variant(name: str, src: str, args: argparse.Namespace, port: int) -> dict[str, dict[str, Any]]:
    server = Server(src, args.mode, port)
    results: dict[str, dict[str, Any]] = {}
    try:
        server.start()
        assert server.proc is not None
        proc = psutil.Process(server.proc.pid)
        world = seed(server.base)
        time.sleep(2)  # the seeding's own after-work (cache fills, events) settles
        idle = idle_rate(proc, 6.0)
        for route in args.routes:
            profiler = None
            if args.profile_dir and route in args.profile_routes:
                out = Path(args.profile_dir) / f"{name}-{route}.txt"
                profiler = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record",
                                             "--pid", str(server.proc.pid), "--format", "raw",
                                             "--rate", "250", "--output", str(out), "--nonblocking",
                                             "--duration", str(int(args.seconds + 2))],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            results[route] = asyncio.run(drive(server.base, world, route, args.rate, args.seconds,
                                               args.concurrency, proc, idle))
            results[route]["idle_ms_per_s"] = 1000 * idle
            if profiler is not None:
                profiler.wait(30)
            bad = {k: v for k, v in results[route]["statuses"].items() if k.split(":")[1] not in ("200", "304")}
            if bad:
                print(f"  {name} {route}: unexpected answers {bad}", file=sys.stderr)
    finally:
        server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("embedded", "scale-out"), default="embedded")
    parser.add_argument("--rate", type=float, default=150.0, help="requests per second, per phase")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per route")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=18731)
    parser.add_argument("--routes", nargs="+", default=list(ROUTES), choices=ROUTES)
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=SRC_DIR (repeatable; default: this checkout's src as `current`)")
    parser.add_argument("--profile-dir", default=None, help="py-spy raw profiles of the first round here")
    parser.add_argument("--profile-routes", nargs="+", default=list(ROUTES))
    args = parser.parse_args()
    variants = [tuple(v.split("=", 1)) for v in args.variant] or [("current", str(ROOT / "src"))]
    runs: dict[str, list[dict[str, dict[str, Any]]]] = {name: [] for name, _ in variants}
    for round_no in range(args.rounds):
        for name, src in variants:
            if round_no > 0:
                args.profile_dir = None
            result = run_variant(name, src, args, args.port)
            runs[name].append(result)
            line = "  ".join(f"{r} {v['cpu_ms_per_request']:.3f}ms (raw {v['raw_cpu_ms_per_request']:.3f})"
                             f"/{v['p50_ms']:.1f}/{v['p95_ms']:.1f}" for r, v in result.items())
            line += f"  idle {next(iter(result.values()))['idle_ms_per_s']:.1f} ms/s"
            print(f"round {round_no + 1} {name}: {line}", flush=True)
    print(f"\nmedians over {args.rounds} rounds ({args.mode}, {args.rate:g} req/s, {args.seconds:g} s per route,"
          f" {args.concurrency} clients): CPU ms/request | p50 ms | p95 ms")
    medians: dict[str, dict[str, tuple[float, float, float]]] = {}
    for name, _ in variants:
        medians[name] = {}
        for route in args.routes:
            rs = [r[route] for r in runs[name]]
            medians[name][route] = (statistics.median(r["cpu_ms_per_request"] for r in rs),
                                    statistics.median(r["p50_ms"] for r in rs),
                                    statistics.median(r["p95_ms"] for r in rs))
    header = f"{'route':<10}" + "".join(f"{name:>26}" for name, _ in variants)
    if len(variants) == 2:
        header += f"{'cpu ratio':>11}{'p50 ratio':>11}"
    print(header)
    for route in args.routes:
        row = f"{route:<10}"
        for name, _ in variants:
            c, p50, p95 = medians[name][route]
            row += f"{c:>10.3f} |{p50:>6.2f} |{p95:>6.2f}"
        if len(variants) == 2:
            a, b = medians[variants[0][0]][route], medians[variants[1][0]][route]
            row += f"{b[0] / a[0]:>11.2f}{b[1] / a[1]:>11.2f}"
        print(row)


if __name__ == "__main__":
    main()

"""The instance's CPU per delivered frame under drag previews, A/B interleaved (issue 17).

Run: .venv/bin/python bench/bench_ws_cpu.py [--rooms 50 --members 10 --rate 2 --seconds 20 --repeat 3]
         [--variant NAME[:batch][:src=DIR][:env=KEY=VALUE]...]... [--json FILE]

One embedded instance per variant (`python -m tableforge serve`), all started from copies of one data
directory that a set-up instance filled (R rooms of M players, one token each), so every variant serves
the same rooms. Every player's socket is connected and joined to its room on every instance for the
whole run; the phases then take turns: for each repeat, each variant in turn gets `--seconds` of load
(after 2 s of warm-up), while the other instances sit idle with their sockets open. The load: every
player sends `--rate` preview moves a second (`token.move {preview: true}`, a drag), each relayed to
the M - 1 others of its room; no database on the path.

Measured per phase: the instance's CPU seconds (psutil: user + system of its process) over the phase,
divided by the preview frames the players received (a batch counts its frames) -> µs per delivery,
and per second of one connected player; delivery latency send -> receipt (client perf_counter);
frames lost (sent x receivers - received); batch messages received.

A variant: `batch` (the players announce `batch` in join), `src=DIR` (run the instance from another
checkout's `src`, e.g. `git archive <commit> src | tar -x -C /tmp/base`: old code against new),
`env=KEY=VALUE` (a setting of the instance). Medians over the repeats, and the ratio to the first variant.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import psutil
from seeding import seed_players, wait_ready
from websockets.asyncio.client import ClientConnection, connect


@dataclass
class Variant:
    name: str
    batch: bool = False
    src: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    sockets: list[ClientConnection] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)


def parse_variant(spec: str) -> Variant:
    name, *opts = spec.split(":")
    v = Variant(name)
    for o in opts:
        if o == "batch":
            v.batch = True
        elif o.startswith("src="):
            v.src = o[4:]
        elif o.startswith("env="):
            k, _, val = o[4:].partition("=")
            v.env[k] = val
        else:
            raise SystemExit(f"unknown variant option {o!r}")
    return v


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data_dir: Path, port: int, src: str | None = None,
          extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TABLEFORGE_DATA_DIR": str(data_dir), "TABLEFORGE_LOG_LEVEL": "WARNING",
           "TABLEFORGE_DATABASE_URL": "", "TABLEFORGE_REDIS_URL": "", "TABLEFORGE_WS_MAX_PER_ADDRESS": "1000000",
           "TABLEFORGE_WS_MAX_PER_USER": "100", **(extra or {})}
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    log = (data_dir.parent / f"server-{port}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "tableforge", "serve", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


async def setup(data_dir: Path, rooms: int, members: int) -> list[dict[str, str]]:
    """Players (token, room, token id) made through a set-up instance, which is then stopped."""
    port = free_port()
    proc = start(data_dir, port)
    try:
        return await seed_players(port, rooms, members, "cpu")
    finally:
        proc.terminate()
        proc.wait(30)


def start_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy on the instance for the phase (warm-up included), raw stacks for bench_capacity's tables."""
    return subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "-p", str(pid),
                             "-d", str(int(seconds)), "-r", "100", "-f", "raw", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_model() -> str:
    return next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")), "?")


class Counter:
    def __init__(self) -> None:
        self.on = False
        self.received = 0
        self.batches = 0
        self.latencies: list[float] = []
        self.sent_at: dict[float, float] = {}


async def reader(ws: ClientConnection, c: Counter) -> None:
    async for raw in ws:
        now = time.perf_counter()
        msg = orjson.loads(raw)
        frames = msg["frames"] if msg.get("type") == "batch" else (msg,)
        if len(frames) > 1 or msg.get("type") == "batch":
            c.batches += c.on
        for f in frames:
            if f.get("type") == "token.moving" and c.on:
                c.received += 1
                sent = c.sent_at.get(f["x"])
                if sent is not None:
                    c.latencies.append((now - sent) * 1000)


async def open_sockets(v: Variant, players: list[dict[str, str]], c: Counter,
                       tasks: list[asyncio.Task[None]]) -> None:
    sem = asyncio.Semaphore(32)

    async def one(p: dict[str, str]) -> ClientConnection:
        async with sem:
            ws = await connect(f"ws://127.0.0.1:{v.port}/ws", additional_headers={
                "Authorization": f"Bearer {p['token']}"}, compression=None, ping_interval=None, max_queue=None)
            join = {"type": "join", "room_id": p["room"], "id": 1, **({"batch": True} if v.batch else {})}
            await ws.send(orjson.dumps(join).decode())
            async for raw in ws:  # the ack (the snapshot, maybe in a batch), then the reader takes over
                msg = orjson.loads(raw)
                if any(f.get("id") == 1 for f in (msg["frames"] if msg.get("type") == "batch" else (msg,))):
                    break
            tasks.append(asyncio.create_task(reader(ws, c)))
            return ws

    v.sockets = list(await asyncio.gather(*(one(p) for p in players)))


def tree_cpu(proc: psutil.Process) -> float:
    """User + system seconds of the server and its worker processes (a server that runs its app in a
    child, as granian does, counts whole)."""
    total = 0.0
    for p in (proc, *proc.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            total += sum(p.cpu_times()[:2])
    return total


async def phase(v: Variant, players: list[dict[str, str]], c: Counter, rate: float, seconds: float,
                members: int) -> dict[str, float]:
    proc = psutil.Process(v.proc.pid if v.proc else 0)
    stop_at = time.perf_counter() + 2 + seconds
    sent = 0
    seq = [0.0]

    async def drag(i: int, ws: ClientConnection, p: dict[str, str]) -> None:
        nonlocal sent
        await asyncio.sleep((i % 100) / 100 / rate)
        nxt = time.perf_counter()
        while True:
            nxt += 1 / rate
            if nxt > stop_at:
                return
            seq[0] += 1
            x = seq[0]
            c.sent_at[x] = time.perf_counter()
            await ws.send(orjson.dumps({"type": "token.move", "room_id": p["room"], "token_id": p["token_id"],
                                        "x": x, "y": 1.0, "preview": True}).decode())
            if c.on:
                sent += 1
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))

    async def meter() -> tuple[float, float, float]:
        await asyncio.sleep(2)  # warm-up
        c.on, c.received, c.batches, c.latencies = True, 0, 0, []
        t0, cpu0 = time.perf_counter(), tree_cpu(proc)
        await asyncio.sleep(seconds)
        cpu1, t1 = tree_cpu(proc), time.perf_counter()
        return cpu1 - cpu0, t1 - t0, time.perf_counter()

    load = os.getloadavg()[0]
    drags = [asyncio.create_task(drag(i, ws, p)) for i, (ws, p) in enumerate(zip(v.sockets, players, strict=True))]
    cpu, wall, _ = await meter()
    await asyncio.gather(*drags)
    await asyncio.sleep(1)  # the last frames in flight
    c.on = False
    received, lat = c.received, sorted(c.latencies) or [0.0]
    c.sent_at.clear()
    expected = sent * (members - 1)
    return {"cpu_s": cpu, "wall_s": wall, "cpu_pct": 100 * cpu / wall, "deliveries": received,
            "deliveries_per_s": received / wall, "us_per_delivery": 1e6 * cpu / max(received, 1),
            "ms_cpu_per_player_s": 1000 * cpu / wall / len(players), "lost": max(0, expected - received),
            "p50_ms": lat[len(lat) // 2], "p95_ms": lat[int(len(lat) * 0.95)], "batches": c.batches,
            "load1": load}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rooms", type=int, default=50)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--rate", type=float, default=2.0, help="preview moves per player per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--profile", type=Path, help="py-spy each variant's first phase; raw stacks into this directory")
    args = ap.parse_args()
    variants = [parse_variant(s) for s in (args.variant or ["single", "batch:batch"])]
    cpu = cpu_model()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu}, {os.cpu_count()} CPUs, load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    # SIGTERM (e.g. `timeout`) cancels the run, so the finally below still stops the instances
    main_task = asyncio.current_task()
    if main_task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    work = Path(tempfile.mkdtemp(prefix="bench-ws-cpu-"))
    tasks: list[asyncio.Task[None]] = []
    try:
        seed = work / "seed"
        players = await setup(seed, args.rooms, args.members)
        print(f"set up: {len(players)} players in {args.rooms} rooms", flush=True)
        counter = Counter()
        async with aiohttp.ClientSession() as http:
            for v in variants:
                shutil.copytree(seed, work / v.name)
                v.port = free_port()
                v.proc = start(work / v.name, v.port, v.src, v.env)
            for v in variants:
                await wait_ready(http, v.port)
                await open_sockets(v, players, counter, tasks)
                print(f"{v.name}: {len(v.sockets)} sockets joined on port {v.port}", flush=True)
            for rep in range(args.repeat):
                for v in variants:
                    spy = None
                    if args.profile and rep == 0 and v.proc:
                        args.profile.mkdir(parents=True, exist_ok=True)
                        spy = start_spy(v.proc.pid, args.seconds + 2, args.profile / f"{v.name}.txt")
                    r = await phase(v, players, counter, args.rate, args.seconds, args.members)
                    if spy is not None:
                        await asyncio.to_thread(spy.wait)
                    v.phases.append(r)
                    print(f"{rep + 1} {v.name:>12}: {r['us_per_delivery']:6.1f} µs/delivery  "
                          f"CPU {r['cpu_pct']:5.1f} %  "
                          f"{r['deliveries_per_s']:7.0f}/s  p50 {r['p50_ms']:6.1f} p95 {r['p95_ms']:7.1f} ms  "
                          f"lost {r['lost']:.0f}  batches {r['batches']}  load1 {r['load1']:.1f}", flush=True)
    finally:
        for t in tasks:
            t.cancel()
        for v in variants:
            for ws in v.sockets:
                ws.transport.abort()
            if v.proc:
                v.proc.terminate()
                v.proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    keys = ("us_per_delivery", "ms_cpu_per_player_s", "cpu_pct", "deliveries_per_s", "p50_ms", "p95_ms", "lost",
            "batches")
    med = {v.name: {k: statistics.median(p[k] for p in v.phases) for k in keys} for v in variants}
    first = variants[0].name
    print("\nmedians (ratio to the first variant):")
    for v in variants:
        m = med[v.name]
        ratio = m["us_per_delivery"] / med[first]["us_per_delivery"]
        print(f"{v.name:>12}: {m['us_per_delivery']:.1f} µs/delivery ({ratio:.2f}x)"
              f"  {m['ms_cpu_per_player_s']:.3f} ms CPU per player-second  CPU {m['cpu_pct']:.1f} %"
              f"  {m['deliveries_per_s']:.0f}/s  p95 {m['p95_ms']:.1f} ms  lost {m['lost']:.0f}"
              f"  batches {m['batches']:.0f}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "variants": {v.name: {"batch": v.batch, "src": v.src, "env": v.env,
                                                               "phases": v.phases, "median": med[v.name]}
                                                      for v in variants}}, indent=1))


if __name__ == "__main__":
    asyncio.run(main())

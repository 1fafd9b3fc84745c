"""The instance's CPU per WebSocket action on PostgreSQL + Redis (scale-out), A/B interleaved (issue 17).

Run: .venv/bin/python bench/bench_ws_actions.py [--rooms 20 --members 5 --rate 1 --seconds 12 --repeat 3]
         [--actions chat,dice,move,rejoin] [--variant NAME[:src=DIR][:env=KEY=VALUE]]... [--profile DIR]
         [--json FILE] [--pg postgresql://postgres@127.0.0.1:5432] [--redis redis://127.0.0.1:6379/0]

A set-up instance fills one PostgreSQL database (R rooms of M players, one token each), which is
then copied (`CREATE DATABASE … TEMPLATE`) once per variant: each variant is one `tableforge serve`
scale-out instance with its own database and Redis namespace, all serving the same rooms. Every
player's socket is connected and joined on every instance for the whole run; the phases then take
turns: for each repeat, each action, each variant in turn gets `--seconds` of load (after 2 s of
warm-up) while the other instances sit idle with their sockets open.

The actions (each player sends `--rate` a second, with an id, and waits for nothing):
- `chat`: `chat.send` (one statement, fan-out to the room);
- `dice`: `dice.roll 2d6+3`;
- `move`: a committed `token.move` of the player's token (the group-committed statement);
- `rejoin`: `join {since: the last version the socket saw}` on the joined socket (what a reconnect
  costs the instance past the handshake: membership, presence, player.joined, the missed events);
- `reconnect`: the player closes its socket (`--close-code`, default 4000 as the load test's reconnect: "coming
  straight back", so its presence lingers for the grace; 1000 for a goodbye, player.left), opens a new one and
  joins with `since` (the handshake, then all of `rejoin`).

Measured per phase: the instance's CPU seconds (psutil, user + system) over the phase divided by
the acks the players received -> µs of instance CPU per action (its fan-out included). Medians over
the repeats, and the ratio to the first variant, per action. A variant: `src=DIR` (run the instance
from another checkout's `src`, e.g. `git archive main src | tar -x -C /tmp/before`), `env=KEY=VALUE`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
from seeding import seed_players, wait_ready
from websockets.asyncio.client import ClientConnection, connect

ACTIONS = ("chat", "dice", "move", "rejoin", "reconnect")


@dataclass
class Variant:
    name: str
    src: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    db: str = ""
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    sockets: list[Sock] = field(default_factory=list)
    phases: dict[str, list[dict[str, float]]] = field(default_factory=dict)


@dataclass
class Sock:
    ws: ClientConnection
    version: int = 0
    acks: int = 0
    reader: asyncio.Task[None] | None = None


def parse_variant(spec: str) -> Variant:
    name, *opts = spec.split(":")
    v = Variant(name)
    for o in opts:
        if o.startswith("src="):
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


def psql(pg: str, sql: str) -> None:
    subprocess.run(["psql", f"{pg}/postgres", "-q", "-c", sql], check=True, capture_output=True)


def env_for(pg: str, db: str, redis: str, work: Path, src: str | None, extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "TABLEFORGE_DATA_DIR": str(work / f"data-{db}"), "TABLEFORGE_LOG_LEVEL": "WARNING",
           "TABLEFORGE_DATABASE_URL": f"{pg}/{db}", "TABLEFORGE_REDIS_URL": redis,
           "TABLEFORGE_REDIS_NAMESPACE": f"bwa{uuid.uuid4().hex[:8]}", "TABLEFORGE_WS_MAX_PER_ADDRESS": "1000000",
           "TABLEFORGE_WS_MAX_PER_USER": "100", "TABLEFORGE_WS_RATE_PER_SECOND": "1000",
           "TABLEFORGE_WS_RATE_BURST": "1000", **extra}
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    subprocess.run([sys.executable, "-m", "tableforge", "migrate"], env=env, check=True, capture_output=True)
    return subprocess.Popen([sys.executable, "-m", "tableforge", "serve", "--port", str(port)], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


async def setup(port: int, rooms: int, members: int) -> list[dict[str, str]]:
    """Players (token, room, token id) made through the set-up instance."""
    return await seed_players(port, rooms, members, "act")


def cpu_model() -> str:
    return next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")), "?")


async def reader(s: Sock) -> None:
    ws = s.ws
    async for raw in ws:
        msg = orjson.loads(raw)
        for f in msg["frames"] if msg.get("type") == "batch" else (msg,):
            version = f.get("version")
            if isinstance(version, int) and version > s.version:
                s.version = version
            if f.get("type") == "ack" and isinstance(f.get("id"), int) and f["id"] >= 1000:
                s.acks += 1
            elif f.get("type") == "error":
                print("error frame:", f, flush=True)


async def open_sockets(v: Variant, players: list[dict[str, str]], tasks: list[asyncio.Task[None]]) -> None:
    sem = asyncio.Semaphore(16)

    async def one(p: dict[str, str]) -> Sock:
        async with sem:
            ws = await connect(f"ws://127.0.0.1:{v.port}/ws", additional_headers={
                "Authorization": f"Bearer {p['token']}"}, compression=None, ping_interval=None, max_queue=None)
            await ws.send(orjson.dumps({"type": "join", "room_id": p["room"], "id": 1}).decode())
            s = Sock(ws)
            async for raw in ws:
                msg = orjson.loads(raw)
                if msg.get("id") == 1:
                    s.version = int(msg["version"])
                    break
            s.reader = asyncio.create_task(reader(s))
            tasks.append(s.reader)
            return s

    v.sockets = list(await asyncio.gather(*(one(p) for p in players)))


def action_frame(action: str, p: dict[str, str], s: Sock, n: int) -> dict[str, Any]:
    if action == "chat":
        return {"type": "chat.send", "room_id": p["room"], "text": f"hello {n}", "id": n}
    if action == "dice":
        return {"type": "dice.roll", "room_id": p["room"], "notation": "2d6+3", "id": n}
    if action == "move":
        return {"type": "token.move", "room_id": p["room"], "token_id": p["token_id"], "x": float(n % 500),
                "y": 1.0, "id": n}
    return {"type": "join", "room_id": p["room"], "since": s.version, "id": n}


CLOSE_CODE = [4000]  # --close-code


async def reconnect(v: Variant, s: Sock, p: dict[str, str], n: int, tasks: list[asyncio.Task[None]]) -> None:
    """Close the player's socket, open a new one, join with `since`; the ack counts as the action's."""
    await s.ws.close(CLOSE_CODE[0])
    if s.reader is not None:
        await asyncio.gather(s.reader, return_exceptions=True)
    ws = await connect(f"ws://127.0.0.1:{v.port}/ws", additional_headers={
        "Authorization": f"Bearer {p['token']}"}, compression=None, ping_interval=None, max_queue=None)
    await ws.send(orjson.dumps({"type": "join", "room_id": p["room"], "since": s.version, "id": n}).decode())
    async for raw in ws:
        msg = orjson.loads(raw)
        if msg.get("id") == n:
            s.version = max(s.version, int(msg["version"]))
            s.acks += 1
            break
    s.ws = ws
    s.reader = asyncio.create_task(reader(s))
    tasks.append(s.reader)


async def phase(v: Variant, action: str, players: list[dict[str, str]], rate: float,
                seconds: float, tasks: list[asyncio.Task[None]]) -> dict[str, float]:
    proc = psutil.Process(v.proc.pid if v.proc else 0)
    stop_at = time.perf_counter() + 2 + seconds
    counter = [1000]

    async def act(i: int, s: Sock, p: dict[str, str]) -> None:
        await asyncio.sleep((i % 100) / 100 / rate)
        nxt = time.perf_counter()
        while True:
            nxt += 1 / rate
            if nxt > stop_at:
                return
            counter[0] += 1
            if action == "reconnect":
                await reconnect(v, s, p, counter[0], tasks)
            else:
                await s.ws.send(orjson.dumps(action_frame(action, p, s, counter[0])).decode())
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))

    load = os.getloadavg()[0]
    runs = [asyncio.create_task(act(i, s, p)) for i, (s, p) in enumerate(zip(v.sockets, players, strict=True))]
    await asyncio.sleep(2)  # warm-up
    acks0 = sum(s.acks for s in v.sockets)
    t0, cpu0 = time.perf_counter(), sum(proc.cpu_times()[:2])
    await asyncio.sleep(seconds)
    cpu1, t1 = sum(proc.cpu_times()[:2]), time.perf_counter()
    acks = sum(s.acks for s in v.sockets) - acks0
    await asyncio.gather(*runs)
    await asyncio.sleep(1)  # the last answers in flight
    cpu, wall = cpu1 - cpu0, t1 - t0
    return {"cpu_s": cpu, "wall_s": wall, "cpu_pct": 100 * cpu / wall, "acks": acks, "acks_per_s": acks / wall,
            "us_per_action": 1e6 * cpu / max(acks, 1), "load1": load}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rooms", type=int, default=20)
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--rate", type=float, default=1.0, help="actions per player per second")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--actions", default=",".join(ACTIONS))
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--profile", type=Path, help="py-spy each variant's first phase of each action (raw stacks)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--close-code", type=int, default=4000, help="how `reconnect` closes its socket")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    CLOSE_CODE[0] = args.close_code
    actions = [a for a in args.actions.split(",") if a]
    if unknown := set(actions) - set(ACTIONS):
        ap.error(f"unknown actions {sorted(unknown)}")
    variants = [parse_variant(s) for s in (args.variant or ["this"])]
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_model()}, {os.cpu_count()} CPUs, load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    main_task = asyncio.current_task()
    if main_task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    work = Path(tempfile.mkdtemp(prefix="bench-ws-actions-"))
    tag = uuid.uuid4().hex[:8]
    seed_db = f"bwa_seed_{tag}"
    made = [seed_db]
    tasks: list[asyncio.Task[None]] = []
    try:
        psql(args.pg, f"CREATE DATABASE {seed_db}")
        port = free_port()
        seeder = start(env_for(args.pg, seed_db, args.redis, work, None, {}), port, work / "seed.log")
        try:
            players = await setup(port, args.rooms, args.members)
        finally:
            seeder.terminate()
            seeder.wait(30)
        print(f"set up: {len(players)} players in {args.rooms} rooms", flush=True)
        async with aiohttp.ClientSession() as http:
            for v in variants:
                v.db = f"bwa_{v.name}_{tag}".lower()
                psql(args.pg, f"CREATE DATABASE {v.db} TEMPLATE {seed_db}")
                made.append(v.db)
                v.port = free_port()
                v.proc = start(env_for(args.pg, v.db, args.redis, work, v.src, v.env), v.port,
                               work / f"{v.name}.log")
            for v in variants:
                await wait_ready(http, v.port)
                await open_sockets(v, players, tasks)
                print(f"{v.name}: {len(v.sockets)} sockets joined on port {v.port}", flush=True)
            for rep in range(args.repeat):
                for action in actions:
                    for v in variants:
                        spy = None
                        if args.profile and rep == 0 and v.proc:
                            args.profile.mkdir(parents=True, exist_ok=True)
                            spy = subprocess.Popen(  # noqa: ASYNC220 (started once per phase, off the clock)
                                [str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "-p",
                                 str(v.proc.pid), "-d", str(int(args.seconds + 2)), "-r", "100", "-f", "raw", "-o",
                                 str(args.profile / f"{v.name}-{action}.txt")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        r = await phase(v, action, players, args.rate, args.seconds, tasks)
                        if spy is not None:
                            await asyncio.to_thread(spy.wait)
                        v.phases.setdefault(action, []).append(r)
                        print(f"{rep + 1} {action:>6} {v.name:>10}: {r['us_per_action']:7.0f} µs CPU/action  "
                              f"CPU {r['cpu_pct']:5.1f} %  {r['acks_per_s']:6.0f} acks/s  load1 {r['load1']:.1f}",
                              flush=True)
    finally:
        for t in tasks:
            t.cancel()
        for v in variants:
            for s in v.sockets:
                s.ws.transport.abort()
            if v.proc:
                v.proc.terminate()
        for v in variants:
            if v.proc:
                try:
                    v.proc.wait(60)  # a graceful stop with sockets open takes a while
                except subprocess.TimeoutExpired:
                    v.proc.kill()
                    v.proc.wait(10)
        for db in made:
            psql(args.pg, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    first = variants[0].name
    med = {v.name: {a: {k: statistics.median(p[k] for p in v.phases[a]) for k in ("us_per_action", "cpu_pct",
                                                                                 "acks_per_s")}
                    for a in v.phases} for v in variants}
    print("\nmedians (ratio to the first variant):")
    for action in actions:
        for v in variants:
            m = med[v.name].get(action)
            if m:
                ratio = m["us_per_action"] / med[first][action]["us_per_action"]
                print(f"{action:>6} {v.name:>10}: {m['us_per_action']:7.0f} µs CPU/action ({ratio:.2f}x)  "
                      f"CPU {m['cpu_pct']:.1f} %  {m['acks_per_s']:.0f} acks/s")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(x) for k, x in vars(args).items()},
                                         "variants": {v.name: {"src": v.src, "env": v.env, "phases": v.phases,
                                                               "median": med[v.name]} for v in variants}}, indent=1))


if __name__ == "__main__":
    asyncio.run(main())

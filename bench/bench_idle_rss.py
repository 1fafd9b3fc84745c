"""Idle RSS of one `tableforge serve` process: embedded (SQLite) and scale-out (PostgreSQL + Redis).

Run: .venv/bin/python bench/bench_idle_rss.py [--python PATH] [--runs 3] [--modes embedded scaleout]
     [--pg postgresql://postgres@127.0.0.1:5432] [--redis redis://127.0.0.1:6379/0]

`--python` is the interpreter whose installed `tableforge` is measured (default: this one), so the
same script measures another checkout's venv (for a before/after). For each run a fresh data
directory is made (scale-out: a temporary PostgreSQL database, created here and dropped after, and
a unique Redis namespace) and migrated by `tableforge migrate`, so that the server measured is a
restart on an existing database, the everyday case (`--fresh` measures a first start, which also
runs the migrations in the server and loads Alembic). The server is started on a free loopback port;
once `/ready` answers 200, and after one more second of quiet, VmRSS (split into RssAnon, the heap
and other private memory, and RssFile, the mapped libraries' pages) and VmHWM are read from
/proc/<pid>/status.
Printed: the median of the runs per mode (VmRSS now, VmHWM the peak during start-up).

`--floor` measures instead what the libraries cost before any TableForge code: a fresh interpreter
imports them step by step, in the order the server needs them, and VmRSS is read after each step
(rich and pygments hidden, as the server hides them; medians of `--runs`). Each step's figure is
what it adds on top of the steps before it (modules shared with an earlier step are counted there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready in {timeout:g} s:\n{log.read_text(errors='replace')[-3000:]}")


def psql(pg: str, sql: str) -> None:
    """Admin statements through the measuring interpreter's asyncpg would pull it into this process;
    the `psql` client keeps the bench free of drivers."""
    subprocess.run(["psql", f"{pg}/postgres", "-q", "-c", sql], check=True, capture_output=True)


def measure(python: str, mode: str, pg: str, redis: str, fresh: bool) -> dict[str, int]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tf-rss-") as data:
        env = {**os.environ, "TABLEFORGE_DATA_DIR": data, "TABLEFORGE_LOG_LEVEL": "WARNING"}
        for key in ("TABLEFORGE_DATABASE_URL", "TABLEFORGE_REDIS_URL", "TABLEFORGE_REDIS_NAMESPACE"):
            env.pop(key, None)
        db = f"tf_rss_{uuid.uuid4().hex[:10]}"
        if mode == "scaleout":
            psql(pg, f"CREATE DATABASE {db}")
            env |= {"TABLEFORGE_DATABASE_URL": f"{pg}/{db}", "TABLEFORGE_REDIS_URL": redis,
                    "TABLEFORGE_REDIS_NAMESPACE": f"rss{uuid.uuid4().hex[:8]}"}
        log = Path(data) / "server.log"
        if not fresh:
            subprocess.run([python, "-m", "tableforge", "migrate"], env=env, check=True, capture_output=True)
        proc = subprocess.Popen([python, "-m", "tableforge", "serve", "--port", str(port)], env=env,
                                stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            wait_ready(proc, f"http://127.0.0.1:{port}/ready", log)
            time.sleep(1.0)  # start-up tasks (cache warm-up, registry heartbeat) settle
            return {key: status_kb(proc.pid, field) for key, field in (
                ("rss_kb", "VmRSS"), ("anon_kb", "RssAnon"), ("file_kb", "RssFile"), ("hwm_kb", "VmHWM"))}
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if mode == "scaleout":
                psql(pg, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


# The floor: (label, modules imported at that step). The embedded and scale-out drivers come last.
FLOOR_STEPS: list[tuple[str, list[str]]] = [
    ("asyncio (with ssl, which asyncio imports)", ["asyncio"]),
    ("uvloop, uvicorn, httptools, its websockets-sansio protocol",
     ["uvloop", "uvicorn", "uvicorn.loops.uvloop", "uvicorn.lifespan.on", "uvicorn.protocols.http.httptools_impl",
      "uvicorn.protocols.websockets.websockets_sansio_impl"]),
    ("pydantic, pydantic-settings", ["pydantic", "pydantic_settings"]),
    ("FastAPI (Starlette, opentelemetry-api)", ["fastapi", "fastapi.staticfiles"]),
    ("SQLAlchemy Core", ["sqlalchemy"]),
    ("sqlalchemy.orm, which sqlalchemy.ext.asyncio imports", ["sqlalchemy.orm"]),
    ("sqlalchemy.ext.asyncio (the async Core itself)", ["sqlalchemy.ext.asyncio"]),
    ("structlog, prometheus_client, msgspec, orjson, cachetools, argon2-cffi, zstandard",
     ["structlog", "prometheus_client", "msgspec", "orjson", "cachetools", "argon2", "zstandard"]),
    ("embedded: aiosqlite and SQLAlchemy's SQLite dialect", ["aiosqlite", "sqlalchemy.dialects.sqlite.aiosqlite"]),
    ("typer (the `tableforge` command, which runs `serve` in its own process)", ["typer"]),
    ("pydantic.v1 (FastAPI checks each route's models against it)", ["pydantic.v1"]),
    ("SQLAlchemy's PostgreSQL dialect (a partial index's postgresql_where loads it, embedded too)",
     ["sqlalchemy.dialects.postgresql"]),
    ("TableForge's own modules (the CLI package and the app), embedded", ["tableforge.cli", "tableforge.api.app"]),
]
SCALE_OUT_STEPS: list[tuple[str, list[str]]] = [
    ("scale-out: asyncpg and SQLAlchemy's PostgreSQL dialect", ["asyncpg", "sqlalchemy.dialects.postgresql.asyncpg"]),
    ("scale-out: redis-py's asyncio client (hiredis)", ["redis.asyncio"]),
    ("TableForge's scale-out modules (PostgreSQL event log, Redis broker, presence, registry)",
     ["tableforge.db.pg_event_log", "tableforge.realtime.redis_broker", "tableforge.realtime.redis_presence",
      "tableforge.realtime.registry", "tableforge.realtime.tickets", "tableforge.services.attempts_redis"]),
]
FLOOR_CHILD = """
import sys
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
out = [rss()]  # the bare interpreter, before this script imports anything
import importlib, json
for name in ("rich", "pygments"):
    sys.modules[name] = None  # as tableforge.without_rich does for the server's first imports
for step in json.loads(sys.argv[1]):
    for module in step:
        importlib.import_module(module)
    out.append(rss())
print(json.dumps(out))
"""


def floor(python: str, runs: int) -> None:
    steps = FLOOR_STEPS + SCALE_OUT_STEPS
    samples = []
    for _ in range(runs):
        done = subprocess.run([python, "-c", FLOOR_CHILD, json.dumps([m for _, m in steps])], check=True,
                              capture_output=True, text=True, env={**os.environ, "TABLEFORGE_LOG_LEVEL": "WARNING"})
        samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
    kb = [statistics.median(run[i] for run in samples) for i in range(len(steps) + 1)]
    print(f"{'step':92s} {'adds MB':>8s} {'VmRSS MB':>9s}")
    print(f"{'the bare interpreter':92s} {'':>8s} {kb[0] / 1024:9.1f}")
    for i, (label, _) in enumerate(steps, start=1):
        print(f"{label:92s} {(kb[i] - kb[i - 1]) / 1024:+8.1f} {kb[i] / 1024:9.1f}")


def python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import platform; print(platform.python_version())"], check=True,
                          capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=sys.executable, help="interpreter with the tableforge to measure")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["embedded", "scaleout"], choices=["embedded", "scaleout"])
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--fresh", action="store_true", help="no `tableforge migrate` first: a first start")
    ap.add_argument("--floor", action="store_true", help="the libraries' cost step by step, no server")
    args = ap.parse_args()
    print(f"date {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, CPU {cpu_model()}, "
          f"{os.cpu_count()} cores, Python {python_version(args.python)}, interpreter {args.python}"
          + ("" if args.floor else f", {'first start' if args.fresh else 'restart on a migrated database'}"))
    if args.floor:
        floor(args.python, args.runs)
        return
    print(f"{'mode':10s} {'VmRSS MB (median)':>18s} {'anon / file MB':>15s} {'VmHWM MB (median)':>18s}  runs (RSS MB)")
    for mode in args.modes:
        runs = [measure(args.python, mode, args.pg, args.redis, args.fresh) for _ in range(args.runs)]
        rss, anon, file, hwm = (statistics.median(r[key] for r in runs) / 1024
                                for key in ("rss_kb", "anon_kb", "file_kb", "hwm_kb"))
        each = ", ".join(f"{r['rss_kb'] / 1024:.1f}" for r in runs)
        print(f"{mode:10s} {rss:18.1f} {f'{anon:.1f} / {file:.1f}':>15s} {hwm:18.1f}  {each}")


if __name__ == "__main__":
    main()

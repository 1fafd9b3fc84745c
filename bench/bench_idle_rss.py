"""Idle RSS of one `tableforge serve` process: embedded (SQLite) and scale-out (PostgreSQL + Redis).

Run: .venv/bin/python bench/bench_idle_rss.py [--python PATH] [--runs 3] [--modes embedded scaleout]
     [--pg postgresql://postgres@127.0.0.1:5432] [--redis redis://127.0.0.1:6379/0]

`--python` is the interpreter whose installed `tableforge` is measured (default: this one), so the
same script measures another checkout's venv (for a before/after). For each run a fresh data
directory is made (scale-out: a temporary PostgreSQL database, created here and dropped after, and
a unique Redis namespace) and migrated by `tableforge migrate`, so that the server measured is a
restart on an existing database, the everyday case (`--fresh` measures a first start, which also
runs the migrations in the server and loads Alembic). The server is started on a free loopback port;
once `/ready` answers 200, and after one more second of quiet, VmRSS and VmHWM are read from
/proc/<pid>/status.
Printed: the median of the runs per mode (VmRSS now, VmHWM the peak during start-up).
"""

from __future__ import annotations

import argparse
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
            return {"rss_kb": status_kb(proc.pid, "VmRSS"), "hwm_kb": status_kb(proc.pid, "VmHWM")}
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if mode == "scaleout":
                psql(pg, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=sys.executable, help="interpreter with the tableforge to measure")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["embedded", "scaleout"], choices=["embedded", "scaleout"])
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--fresh", action="store_true", help="no `tableforge migrate` first: a first start")
    args = ap.parse_args()
    print(f"date {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, CPU {cpu_model()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, interpreter {args.python}, "
          f"{'first start' if args.fresh else 'restart on a migrated database'}")
    print(f"{'mode':10s} {'VmRSS MB (median)':>18s} {'VmHWM MB (median)':>18s}  runs (RSS MB)")
    for mode in args.modes:
        runs = [measure(args.python, mode, args.pg, args.redis, args.fresh) for _ in range(args.runs)]
        rss = statistics.median(r["rss_kb"] for r in runs) / 1024
        hwm = statistics.median(r["hwm_kb"] for r in runs) / 1024
        each = ", ".join(f"{r['rss_kb'] / 1024:.1f}" for r in runs)
        print(f"{mode:10s} {rss:18.1f} {hwm:18.1f}  {each}")


if __name__ == "__main__":
    main()

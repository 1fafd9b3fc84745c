"""Capacity of one instance under `tableforge loadtest` (issue 17), optionally with a py-spy profile
of the instance during the steady phase.

Run: .venv/bin/python bench/bench_capacity.py --mode scaleout|embedded [--users 1000 --rooms 200
     --duration 30 --ramp-up 10] [--processes N] [--pin-client CPUS --pin-server CPUS]
     [--profile SECONDS [--profile-nonblocking]] [--runs R] [--out DIR] [--pg postgresql://postgres@127.0.0.1:5432]
     [--redis redis://127.0.0.1:6379/0]

Each run: a fresh database (scale-out: a new PostgreSQL database and Redis namespace, started with
`tableforge cluster --instances 1`; embedded: a new data directory and `tableforge serve`), then
`tableforge loadtest --users N --rooms N/5 --duration 30 --ramp-up 10 --json` against it, then the
instance is stopped and the database dropped. The load averages (`uptime`) are read at the start,
when the steady phase starts and at the end: the machine is shared, so the figures are noisy.

`--profile S` (needs `pip install py-spy`): once every player is connected (the ramp-up is over,
`tableforge_ws_connections` >= 99 % of the users, or ramp-up + 2 s since the first socket, whichever
comes first), `py-spy record` samples the instance for S seconds, twice at once: raw collapsed stacks
(`prof-<run>.txt`, read here; py-spy pauses the process for each sample, since without pausing it loses
the stacks of SQLAlchemy's greenlets: a quarter of the samples came back with no root;
`--profile-nonblocking` for the old way) and a flame graph (`prof-<run>.svg`, never pausing). The thread
pool's idle workers are left out of the shares. A profiled run's own figures include py-spy's cost:
measure apart.
Scale-out runs also read, inside the steady phase (from 2 s after it starts to 2 s before it ends), the
instance's `tableforge_db_pool_connects_total` (server connections the pool opened) and the CPU time of
the PostgreSQL backends serving the run's database (`/proc/<pid>/stat` of the postmaster's children,
polled every 50 ms: a backend that lived less than that is missed, so for a pool that opens and closes
connections this is a lower bound).

Printed: one line of figures per run and, for a profile, the top 15 functions by inclusive share
(own + children) with their own share.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

BIN = Path(sys.executable).parent
SCAFFOLD = ("<module>", "asyncio/events.py", "asyncio/base_events.py", "asyncio/runners.py", "runpy.py",
            "threading.py", "uvicorn/server.py", "uvicorn/main.py", "uvicorn/_compat.py", "tableforge/cli/", "typer/",
            "click/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def wait_for_quiet(below: float, at_most: float) -> float:
    """Seconds waited for the 1-min load average to drop below `below` (others share the machine)."""
    t = time.monotonic()
    while below and os.getloadavg()[0] >= below and time.monotonic() - t < at_most:
        time.sleep(5)
    return time.monotonic() - t


def psql(pg: str, sql: str) -> None:
    subprocess.run(["psql", f"{pg}/postgres", "-q", "-c", sql], check=True, capture_output=True)


def get(url: str, timeout: float = 2.0) -> str | None:
    try:
        with urlopen(url, timeout=timeout) as r:
            return r.read().decode()
    except (URLError, OSError):
        return None


def listening_pid(port: int, parent: int) -> int | None:
    import psutil

    for child in [*psutil.Process(parent).children(recursive=True), psutil.Process(parent)]:
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in child.net_connections("tcp")):
                return child.pid
        except psutil.Error:
            continue
    return None


def connections(port: int) -> int:
    text = get(f"http://127.0.0.1:{port}/metrics") or ""
    for line in text.splitlines():
        if line.startswith("tableforge_ws_connections"):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def _idle(stack: str) -> bool:
    """A thread-pool worker waiting for work (a sampler that pauses the process counts it)."""
    leaf = stack.rsplit(";", 1)[-1]
    return leaf.startswith("_worker (") and "concurrent/futures/thread.py" in leaf


def top_functions(raw: Path, n: int = 15) -> tuple[int, list[tuple[str, float, float]]]:
    """(samples, [(function, inclusive %, own %)]) from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or _idle(stack):
            continue
        k = int(count)
        total += k
        # "name (path/to/file.py:123)": a function is its name and file, whatever the line
        frames = [f.rsplit(":", 1)[0] + ")" if f.endswith(")") and ":" in f else f for f in stack.split(";")]
        for f in set(frames):
            inclusive[f] += k
        own[frames[-1]] += k
    rows = [(f, 100 * c / total, 100 * own[f] / total) for f, c in inclusive.most_common()]
    # the entry and dispatch frames (the event loop running a callback, the CLI that started the
    # server) hold nearly everything: keep the functions that say where the time goes
    rows = [r for r in rows if r[1] < 99.5 and not any(s in r[0] for s in SCAFFOLD)]
    return total, rows[:n]


def top_own(raw: Path, n: int = 15) -> list[tuple[str, float]]:
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and not _idle(stack):
            leaf = stack.split(";")[-1]
            own[leaf.rsplit(":", 1)[0] + ")" if ":" in leaf else leaf] += int(count)
            total += int(count)
    return [(f, 100 * c / total) for f, c in own.most_common(n)]


def short(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"


def pool_connects(port: int) -> float | None:
    text = get(f"http://127.0.0.1:{port}/metrics", timeout=15) or ""  # a saturated instance answers late
    for line in text.splitlines():
        if line.startswith('tableforge_db_pool_connects_total{pool="main"}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def forget_namespace(url: str, namespace: str) -> None:
    """Delete what the instance left in Redis under its namespace (the cache's generation counters
    have no expiry): SCAN + UNLINK, in batches."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"tableforge:{namespace}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)
    finally:
        client.close()


def stalls(port: int) -> dict[str, float]:
    """The instance's own stalls since it started, from /metrics: the collector's pauses of generations
    1 and 2 (count, total ms, mean ms) and the event loop's lag (p50/p95/p99 ms, from the histogram's
    buckets: an upper bound of each). Delivery waits for both."""
    from prometheus_client.parser import text_string_to_metric_families

    text = get(f"http://127.0.0.1:{port}/metrics", timeout=15) or ""
    out: dict[str, float] = {}
    lag: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tableforge_gc_pause_seconds_count":
                out[f"gc{sample.labels['generation']}_count"] = sample.value
            elif sample.name == "tableforge_gc_pause_seconds_sum":
                out[f"gc{sample.labels['generation']}_ms"] = round(1000 * sample.value, 1)
            elif sample.name == "tableforge_event_loop_lag_seconds_bucket":
                lag.append((float(sample.labels["le"]), sample.value))
    for gen in ("1", "2"):
        if out.get(f"gc{gen}_count"):
            out[f"gc{gen}_mean_ms"] = round(out[f"gc{gen}_ms"] / out[f"gc{gen}_count"], 2)
    lag.sort()
    total = lag[-1][1] if lag else 0
    for q in (50, 95, 99):
        bound = next((le for le, n in lag if total and n >= total * q / 100), None)
        if bound is not None:
            out[f"lag_p{q}_ms"] = 1000 * bound
    return out


class BackendCpu:
    """CPU seconds of the PostgreSQL backends serving one database (this machine's server), polled.
    `ticks` keeps every backend's last reading, also after it exited."""

    def __init__(self, pg: str, database: str, every: float = 0.05) -> None:
        # The postmaster: the first line of postmaster.pid in the server's data directory (asking a
        # backend for its parent raced with that backend's exit when psql quit).
        data_dir = subprocess.run(["psql", f"{pg}/postgres", "-Atqc", "SHOW data_directory"], check=True,
                                  capture_output=True, text=True).stdout.strip()
        self.postmaster = int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
        self.tag = f" {database} ".encode()
        self.every = every
        self.ticks: dict[int, int] = {}
        self._mine: dict[int, bool] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        children = Path(f"/proc/{self.postmaster}/task/{self.postmaster}/children")
        while not self._stop.wait(self.every):
            try:
                pids = [int(p) for p in children.read_text().split()]
            except OSError:
                continue
            for pid in pids:
                try:
                    if pid not in self._mine:
                        self._mine[pid] = self.tag in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                    if self._mine[pid]:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                        self.ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
                except (OSError, ValueError, IndexError):
                    continue

    def snapshot(self) -> dict[int, int]:
        return dict(self.ticks)

    @staticmethod
    def seconds_between(a: dict[int, int], b: dict[int, int]) -> float:
        return sum(t - a.get(pid, 0) for pid, t in b.items()) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def run_once(args: argparse.Namespace, index: int, out: Path) -> dict[str, object]:
    tag = (f"{args.mode}-p{args.processes}{'-pinned' if args.pin_client else ''}"
           f"{'-nobatch' if args.no_batch else ''}-{index}")
    work = Path(tempfile.mkdtemp(prefix=f"cap-{tag}-", dir=out))
    port = free_port()
    db = f"cap_{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "TABLEFORGE_DATA_DIR": str(work / "data"), "TABLEFORGE_LOG_LEVEL": "WARNING",
           "TABLEFORGE_WS_MAX_PER_ADDRESS": "1000000"}
    if args.mode == "scaleout":
        psql(args.pg, f"CREATE DATABASE {db}")
        namespace = f"cap{uuid.uuid4().hex[:8]}"
        env |= {"TABLEFORGE_DATABASE_URL": f"{args.pg}/{db}", "TABLEFORGE_REDIS_URL": args.redis,
                "TABLEFORGE_REDIS_NAMESPACE": namespace}
        cmd = [str(BIN / "tableforge"), "cluster", "--instances", "1", "--base-port", str(port),
               "--log-dir", str(work / "logs")]
    else:
        env |= {"TABLEFORGE_DATABASE_URL": "", "TABLEFORGE_REDIS_URL": ""}
        cmd = [str(BIN / "tableforge"), "serve", "--port", str(port)]
    log = (work / "server.log").open("wb")
    backends = BackendCpu(args.pg, db) if args.mode == "scaleout" else None  # before the server: nothing to stop yet
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    record: dict[str, object] = {"run": tag, "load_start": load()}
    try:
        deadline = time.monotonic() + 120
        while get(f"http://127.0.0.1:{port}/ready") is None:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{tag}: the instance did not start; see {work}/server.log")
            time.sleep(0.3)
        pid = listening_pid(port, server.pid)
        result = work / "r.json"
        lt = [str(BIN / "tableforge"), "loadtest", "--url", f"http://127.0.0.1:{port}", "--users", str(args.users),
              "--rooms", str(args.rooms), "--duration", str(args.duration), "--ramp-up", str(args.ramp_up),
              "--processes", str(args.processes), "--json", str(result)]
        if args.pin_client:
            lt += ["--pin-client", args.pin_client, "--pin-server", args.pin_server]
        if args.no_batch:
            lt.append("--no-batch")
        record["command"] = " ".join(["tableforge", *lt[1:]]).replace(str(result), "r.json")
        client = subprocess.Popen(lt, env={**os.environ, "COLUMNS": "200"}, stdout=(work / "loadtest.txt").open("w"),
                                  stderr=subprocess.STDOUT)
        # the steady phase: every player connected, or the ramp-up over since the first one came
        # (on a saturated machine some never connect)
        first = None
        while client.poll() is None:
            n = connections(port)
            if n and first is None:
                first = time.monotonic()
            if n >= 0.99 * args.users or (first is not None and time.monotonic() - first > args.ramp_up + 2):
                break
            time.sleep(0.5)
        record["load_steady"] = load()
        if backends is not None and not args.profile:
            # the pool and the database inside the steady phase (see the module's docstring)
            time.sleep(2)
            c0, b0, t0 = pool_connects(port), backends.snapshot(), time.monotonic()
            time.sleep(max(1.0, args.duration - 4))
            c1, b1, t1 = pool_connects(port), backends.snapshot(), time.monotonic()
            record["steady_window_s"] = round(t1 - t0, 1)
            if c0 is not None and c1 is not None:
                record["pool_connects"] = c1 - c0
                record["pool_connects_total"] = c1
            pg_s = BackendCpu.seconds_between(b0, b1)
            record["pg_cpu_pct"] = round(100 * pg_s / (t1 - t0), 1)
            record["pg_backends_started"] = len(set(b1) - set(b0))
        if args.profile and client.poll() is None and pid is not None:
            time.sleep(2)
            spy = str(BIN / "py-spy")
            base = ["record", "-d", str(args.profile), "-p", str(pid)]
            pausing = ["--nonblocking"] if args.profile_nonblocking else []  # the raw stacks, see the docstring
            raw, svg = out / f"prof-{tag}.txt", out / f"prof-{tag}.svg"
            spy_log = (work / "py-spy.log").open("w")
            procs = [subprocess.Popen([spy, *base, *pausing, "-f", "raw", "-o", str(raw)], stdout=spy_log,
                                      stderr=spy_log),
                     subprocess.Popen([spy, *base, "--nonblocking", "-r", "50", "-o", str(svg)],
                                      stdout=spy_log, stderr=spy_log)]
            for p in procs:
                p.wait()
            if raw.exists():
                record["profile"] = str(raw)
            else:
                print(f"{tag}: py-spy wrote nothing (pid {pid}):\n{(work / 'py-spy.log').read_text()[-2000:]}")
        client.wait(timeout=args.setup_timeout + args.duration + args.ramp_up + 300)
        record["load_end"] = load()
        record["stalls"] = stalls(port)
        res = json.loads(result.read_text()) if result.exists() else None
        record["result"] = res
        shutil.copy(work / "loadtest.txt", out / f"loadtest-{tag}.txt")
        if res:
            shutil.copy(result, out / f"r-{tag}.json")
    finally:
        if backends is not None:
            backends.stop()
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)
        if args.mode == "scaleout":
            psql(args.pg, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            forget_namespace(args.redis, namespace)
    return record


def line(rec: dict[str, object]) -> str:
    res = rec.get("result")
    if not isinstance(res, dict):
        return f"{rec['run']}: no result (see loadtest-{rec['run']}.txt)"
    t = {x["key"]: x for x in res["targets"]}

    def v(key: str) -> str:
        x = t[key]
        return "n/a" if x["measured"] is None else f"{x['measured']:g}{'' if x['pass'] else ' ✗'}"

    c, i = res["client"], res["integrity"]
    passed = sum(1 for x in res["targets"] if x["pass"])
    read = sum(1 for x in res["targets"] if x["measured"] is not None)
    return (f"{rec['run']}: API {v('api_p95_ms')} | DB {v('database_p95_ms')} | cache {v('cache_p95_ms')} | "
            f"delivery {v('delivery_p95_ms')} | hit {v('cache_hit_rate_pct')} | mem {v('memory_mb_per_1000_users')} | "
            f"CPU {v('cpu_pct')} | {passed}/{read} of {len(res['targets'])} | client {c['cpu_pct_median']} % "
            f"({c['cpu_share_of_usable_pct']} % of usable, lag {c['loop_lag_ms_median']} ms) | machine "
            f"{c['machine_cpu_pct_median']} % | pinned {res['pinning']['pinned']} | lost/dup {i['lost']}/"
            f"{i['duplicates']} | errors {res['errors_total']} | load {rec['load_start']} / {rec['load_steady']} / "
            f"{rec['load_end']}"
            + (f" | steady {rec['steady_window_s']} s: pool connects {rec.get('pool_connects')} (total "
               f"{rec.get('pool_connects_total')}), PostgreSQL backends started {rec['pg_backends_started']}, "
               f"their CPU {rec['pg_cpu_pct']} % of a core" if "steady_window_s" in rec else "")
            + (f" | stalls {rec['stalls']}" if rec.get("stalls") else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("scaleout", "embedded"), required=True)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--rooms", type=int, default=0, help="default: users / 5")
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--ramp-up", type=float, default=10)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--no-batch", action="store_true", help="players do not announce batch frames (A/B)")
    ap.add_argument("--pin-client")
    ap.add_argument("--pin-server")
    ap.add_argument("--profile", type=int, default=0, help="py-spy seconds in the steady phase")
    ap.add_argument("--profile-nonblocking", action="store_true",
                    help="sample the raw stacks without pausing the instance (loses the greenlets' stacks)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench-capacity"))
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--setup-timeout", type=float, default=600)
    ap.add_argument("--wait-load", type=float, default=0,
                    help="before each run, wait until the 1-min load average is below this (0: do not wait)")
    ap.add_argument("--wait-max", type=float, default=900, help="longest wait for --wait-load (s)")
    args = ap.parse_args()
    args.rooms = args.rooms or max(1, args.users // 5)
    if bool(args.pin_client) != bool(args.pin_server):
        ap.error("--pin-client and --pin-server go together")
    if args.profile and not (BIN / "py-spy").exists():
        ap.error(f"--profile needs py-spy in {BIN}: pip install py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_model()}, {os.cpu_count()} CPUs")
    for index in range(1, args.runs + 1):
        waited = wait_for_quiet(args.wait_load, args.wait_max)
        rec = run_once(args, index, args.out)
        if args.wait_load:
            print(f"(waited {waited:.0f} s for a 1-min load average below {args.wait_load:g})")
        print(f"$ {rec.get('command')}")
        print(line(rec), flush=True)
        if rec.get("profile"):
            total, rows = top_functions(Path(str(rec["profile"])))
            print(f"  profile: {total} samples of the instance (py-spy, on-CPU only); inclusive % / own %:")
            for frame, inc, self_ in rows:
                print(f"  {inc:5.1f} {self_:5.1f}  {short(frame)}")
            print("  top by own share:")
            for frame, self_ in top_own(Path(str(rec["profile"]))):
                print(f"        {self_:5.1f}  {short(frame)}")


if __name__ == "__main__":
    main()

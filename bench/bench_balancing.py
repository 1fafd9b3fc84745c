"""Least-connections against room affinity, through Debian's HAProxy in front of three instances.

One 3-instance scale-out cluster (shared PostgreSQL, a temporary database; a private redis-server so
that its counters are this run's alone) runs the whole time. Each run puts HAProxy in front of it with
one strategy's backend (the shipped files' `backend tableforge`: deploy/haproxy/haproxy.cfg for
least-connections, deploy/haproxy/haproxy-rooms.cfg for room affinity) and plays `tableforge
loadtest`'s workload through it (its engine, in this process, so that the counters can be read at the
start and end of its steady phase). Its sockets carry `?room=`, as the web page's do. The strategies
alternate, A/B/A/B…, and the report gives each one's median and the per-pair ratios.

Measured over each steady phase:
- server CPU per delivered frame: CPU seconds (user + system, psutil) of the three instance processes
  over the frames they queued to sockets (`tableforge_ws_messages_out_total`);
- Redis traffic: bytes Redis sent (`total_net_output_bytes`: pub/sub fan-out to the subscribed
  instances, mostly), PUBLISH calls and commands (INFO stats / commandstats), and the pub/sub messages
  the instances read (`tableforge_broker_received_total`);
- rooms subscribed across the instances (`tableforge_ws_rooms`, summed) and sockets per instance;
- delivery p95: the load generator's send -> each other member's receipt, all kinds.

    .venv/bin/python bench/bench_balancing.py --pairs 3 --users 150 --rooms 25 --duration 60 --json lb.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.balancing.support import ROOMS, backend_of, leastconn_backend, start_balancer
from tests.support.cluster import Cluster
from tests.support.private_redis import PrivateRedis
from tests.support.services import temp_database

from tableforge.loadtest.hist import parse_prometheus
from tableforge.loadtest.report import merge
from tableforge.loadtest.scenario import LoadConfig, LoadTest

STRATEGIES = {"leastconn": leastconn_backend, "rooms": lambda: backend_of(ROOMS)}


def _sum(parsed: dict[str, Any], name: str) -> float:
    return float(sum(parsed.get("value", {}).get(name, {}).values()))


def snapshot(cluster: Cluster, redis_port: int) -> dict[str, Any]:
    cpu = 0.0
    for server in cluster.servers:
        assert server.proc is not None
        proc = psutil.Process(server.proc.pid)
        for p in [proc, *proc.children(recursive=True)]:
            times = p.cpu_times()
            cpu += times.user + times.system
    frames = received = publishes = rooms = 0.0
    sockets = []
    for server in cluster.servers:
        parsed = parse_prometheus(httpx.get(f"{server.base_url}/metrics", timeout=10).text)
        frames += _sum(parsed, "tableforge_ws_messages_out_total")
        received += _sum(parsed, "tableforge_broker_received_total")
        publishes += _sum(parsed, "tableforge_broker_publishes_total")
        rooms += _sum(parsed, "tableforge_ws_rooms")
        sockets.append(int(_sum(parsed, "tableforge_ws_connections")))
    client = redis.Redis(port=redis_port)
    try:
        stats = client.info("stats")
        commands = client.info("commandstats")
    finally:
        client.close()
    return {"t": time.monotonic(), "cpu_s": cpu, "frames": frames, "broker_received": received,
            "broker_publishes": publishes, "rooms_subscribed": rooms, "sockets": sockets,
            "redis_out_bytes": float(stats["total_net_output_bytes"]),
            "redis_in_bytes": float(stats["total_net_input_bytes"]),
            "redis_commands": float(stats["total_commands_processed"]),
            "redis_publish_calls": float(commands.get("cmdstat_publish", {}).get("calls", 0))}


class MeasuredLoadTest(LoadTest):
    """The loadtest's own run, with our counters read when its steady phase starts and ends."""

    def __init__(self, cfg: LoadConfig, cluster: Cluster, redis_port: int) -> None:
        super().__init__(cfg)
        self.cluster, self.redis_port = cluster, redis_port
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}
        self.during: dict[str, Any] = {}
        self.on_phase = self._phase

    async def _begin_steady(self, http: Any, at: float) -> None:
        await super()._begin_steady(http, at)
        self.before = await asyncio.to_thread(snapshot, self.cluster, self.redis_port)
        await asyncio.sleep(self.cfg.duration / 2)
        self.during = await asyncio.to_thread(snapshot, self.cluster, self.redis_port)

    def _phase(self, phase: str) -> None:
        self.phase = phase
        if phase == "draining":  # the players are done: the end of the steady phase
            self.after = snapshot(self.cluster, self.redis_port)


def one_run(strategy: str, cluster: Cluster, redis_port: int, args: argparse.Namespace, work: Path,
            seed: int) -> dict[str, Any]:
    proxy, lb = start_balancer(cluster, STRATEGIES[strategy](), work / f"haproxy-{strategy}-{seed}",
                               check_interval="2s")  # the shipped checks
    try:
        cfg = LoadConfig(urls=[lb], users=args.users, rooms=args.rooms, duration=args.duration,
                         ramp_up=args.ramp_up, seed=seed, think_time=args.think_time)
        lt = MeasuredLoadTest(cfg, cluster, redis_port)
        result = asyncio.run(lt.run())
    finally:
        proxy.stop()
    b, a = lt.before, lt.after
    d = {k: a[k] - b[k] for k in ("t", "cpu_s", "frames", "broker_received", "broker_publishes", "redis_out_bytes",
                                   "redis_in_bytes", "redis_commands", "redis_publish_calls")}
    delivery = merge(list(lt.delivery_hist.values()))
    return {
        "strategy": strategy, "seed": seed, "seconds": round(d["t"], 1),
        "cpu_us_per_frame": round(d["cpu_s"] / max(d["frames"], 1) * 1e6, 2),
        "cpu_pct": round(d["cpu_s"] / d["t"] * 100, 1),
        "frames_per_s": round(d["frames"] / d["t"], 1),
        "redis_out_kb_per_s": round(d["redis_out_bytes"] / d["t"] / 1024, 1),
        "redis_commands_per_s": round(d["redis_commands"] / d["t"], 1),
        "redis_publish_per_s": round(d["redis_publish_calls"] / d["t"], 1),
        "broker_received_per_s": round(d["broker_received"] / d["t"], 1),
        # per message published: independent of how much was played in the run
        "redis_out_bytes_per_publish": round(d["redis_out_bytes"] / max(d["redis_publish_calls"], 1)),
        "received_per_publish": round(d["broker_received"] / max(d["redis_publish_calls"], 1), 2),
        "rooms_subscribed": lt.during["rooms_subscribed"], "sockets_per_instance": lt.during["sockets"],
        "delivery_p95_ms": round(delivery.quantile(95), 2) if delivery.count else None,
        "delivery_p50_ms": round(delivery.quantile(50), 2) if delivery.count else None,
        "deliveries": delivery.count, "integrity": result["integrity"], "errors": result["errors"],
        "client_cpu_pct": result["client"]["cpu_pct_median"],
    }


KEYS = ("cpu_us_per_frame", "cpu_pct", "frames_per_s", "redis_out_kb_per_s", "redis_commands_per_s",
        "redis_publish_per_s", "broker_received_per_s", "redis_out_bytes_per_publish", "received_per_publish",
        "rooms_subscribed", "delivery_p95_ms", "delivery_p50_ms")


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for strategy in STRATEGIES:
        mine = [r for r in runs if r["strategy"] == strategy]
        out[strategy] = {k: statistics.median(r[k] for r in mine if r[k] is not None) for k in KEYS}
    pairs = [(runs[i], runs[i + 1]) for i in range(0, len(runs) - 1, 2)]
    out["ratio_rooms_over_leastconn"] = {
        k: round(statistics.median(b[k] / a[k] for a, b in pairs if a[k] and b[k] is not None), 3) for k in KEYS}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=3, help="A/B pairs (least-connections, then room affinity)")
    ap.add_argument("--users", type=int, default=150)
    ap.add_argument("--rooms", type=int, default=25)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--ramp-up", type=float, default=15.0)
    ap.add_argument("--think-time", type=float, default=2.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-lb-") as tmp, temp_database() as pg_url:
        work = Path(tmp)
        redis_server = PrivateRedis(work)
        redis_server.start()
        cluster = Cluster(3, pg_url, redis_server.url, work / "data",
                          TABLEFORGE_LOG_LEVEL="WARNING", TABLEFORGE_WS_MAX_PER_ADDRESS="100000",
                          TABLEFORGE_WS_MAX_PER_USER="100")
        try:
            # as Cluster.start, with the patience a machine shared with other work may need
            cluster.servers[0].start(timeout=300)
            for server in cluster.servers[1:]:
                server.start_async()
            for server in cluster.servers[1:]:
                server.wait_healthy(300)
            for i in range(args.pairs):
                for strategy in STRATEGIES:
                    run = one_run(strategy, cluster, redis_server.port, args, work, seed=i + 1)
                    runs.append(run)
                    print(json.dumps(run), flush=True)
        finally:
            cluster.stop()
            redis_server.stop()
    report = {"date": time.strftime("%Y-%m-%d"), "cpu": platform.processor() or _cpu_model(),
              "cores": psutil.cpu_count(), "args": {k: str(v) for k, v in vars(args).items()},
              "runs": runs, "summary": summarize(runs)}
    print(json.dumps(report["summary"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


if __name__ == "__main__":
    main()

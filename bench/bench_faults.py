"""Delivery delay during and after faults, on two real instances under load (issue 16).

Each run: a fresh 2-instance cluster on private PostgreSQL and Redis servers, six players (three
per instance) committing `--rate` moves/s each; `--before` seconds of steady play, then the fault,
then `--after` seconds of play. Faults: `redis-restart` (Redis killed, `--down` s, started empty),
`redis-cut` (one instance's link to Redis cut by a TCP proxy for `--down` s), `pg-fast` and
`pg-immediate` (PostgreSQL restarted), `pg-outage` (PostgreSQL stopped for `--down` s).

Per run it reports, for every (socket, version) pair: the delay from the committer's ack to the
socket receiving it, split into before / during / after the fault; the time from the end of the
fault until every socket had every version committed so far ("settled"); versions never received,
sockets closed, and `room.resync`s. Run from the repository root:

    .venv/bin/python bench/bench_faults.py --runs 10 --json faults.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.cluster import Cluster
from tests.support.fault_load import Table
from tests.support.private_postgres import PrivatePostgres
from tests.support.private_redis import PrivateRedis
from tests.support.proxy import TcpProxy
from tests.support.waiting import wait_until

FAULTS = ("redis-restart", "redis-cut", "pg-fast", "pg-immediate", "pg-outage")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_run(fault: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    pg = PrivatePostgres(work / "pg")
    redis = PrivateRedis(work)
    proxy: TcpProxy | None = None
    cluster: Cluster | None = None
    table: Table | None = None
    try:
        await asyncio.to_thread(pg.start)
        redis.start()
        redis_url = redis.url
        cluster = Cluster(2, pg.create_database("tableforge"), redis_url, work / "data",
                          TABLEFORGE_DB_CONNECTION_TIMEOUT="3")
        if fault == "redis-cut":
            proxy = TcpProxy("127.0.0.1", redis.port)
            await proxy.start()
            cluster.servers[0].env["TABLEFORGE_REDIS_URL"] = f"redis://127.0.0.1:{proxy.port}/0"
        cluster.start()
        urls = [s.base_url for s in cluster.servers]
        table = Table(urls[1], urls, per_instance=3, rate=args.rate)
        await table.setup()
        table.start()
        await asyncio.sleep(args.before)
        t0 = time.monotonic()
        if fault == "redis-restart":
            await asyncio.to_thread(redis.stop)
            await asyncio.sleep(args.down)
            await asyncio.to_thread(redis.start)
        elif fault == "redis-cut":
            assert proxy is not None
            await proxy.stop()
            await asyncio.sleep(args.down)
            await proxy.start()
        elif fault in ("pg-fast", "pg-immediate"):
            await asyncio.to_thread(pg.restart, fault.removeprefix("pg-"))
        else:
            await asyncio.to_thread(pg.stop, "fast")
            await asyncio.sleep(args.down)
            await asyncio.to_thread(pg.start)
        t1 = time.monotonic()
        await asyncio.sleep(args.after)
        await table.finish()
        latest = table.latest_acked()
        with contextlib.suppress(AssertionError):  # reported below as missing versions
            await wait_until(lambda: table.complete(latest), 30, "every socket complete")
        acked_at = {v: t for seat in table.seats for v, t in seat.acked_at.items()}
        phases: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        settled = 0.0
        missing = 0
        for seat in table.seats:
            for version, at in acked_at.items():
                if version <= seat.base:
                    continue
                got = seat.got_at.get(version)
                if got is None:
                    missing += 1
                    continue
                phase = "before" if at < t0 else "during" if at <= t1 else "after"
                phases[phase].append((got - at) * 1000)
                if at <= t1:
                    settled = max(settled, got - t1)
        return {
            "fault": fault, "fault_seconds": round(t1 - t0, 2), "versions": latest,
            "delay_ms": {name: {"p50": round(_pct(v, 0.5), 2), "p95": round(_pct(v, 0.95), 2),
                                "max": round(max(v, default=float("nan")), 2), "n": len(v)}
                         for name, v in phases.items()},
            "settled_after_fault_s": round(settled, 3), "missing": missing,
            "closed": sum(1 for s in table.seats if s.close_code is not None),
            "resyncs": sum(s.resyncs for s in table.seats),
            "refused": sum(sum(s.refused.values()) for s in table.seats),
        }
    finally:
        if table is not None:
            await table.close()
        if cluster is not None:
            cluster.stop()
        if proxy is not None:
            await proxy.stop()
        redis.stop()
        pg.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="moves per second per player")
    parser.add_argument("--before", type=float, default=3.0)
    parser.add_argument("--down", type=float, default=4.0)
    parser.add_argument("--after", type=float, default=5.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for run in range(args.runs):
        for fault in args.faults.split(","):
            with tempfile.TemporaryDirectory(prefix="tf-faults-") as tmp:
                result = await one_run(fault, args, Path(tmp))
            result["run"] = run + 1
            result["load_avg_1m"] = round(os.getloadavg()[0], 1)  # a loaded machine explains a slow run
            results.append(result)
            d = result["delay_ms"]
            print(f"{fault:14s} run {run + 1}: during p50/p95/max {d['during']['p50']}/{d['during']['p95']}/"
                  f"{d['during']['max']} ms, after {d['after']['p50']}/{d['after']['p95']}/{d['after']['max']} ms, "
                  f"settled {result['settled_after_fault_s']} s after the fault, missing {result['missing']}, "
                  f"closed {result['closed']}, resyncs {result['resyncs']}, refused {result['refused']}, "
                  f"load {result['load_avg_1m']}", flush=True)
    print("\nmedians over runs:")
    for fault in args.faults.split(","):
        rows = [r for r in results if r["fault"] == fault]
        med = {k: round(statistics.median(r["delay_ms"][p][q] for r in rows), 1)
               for k, (p, q) in {"during_p50": ("during", "p50"), "during_p95": ("during", "p95"),
                                 "after_p95": ("after", "p95"), "after_max": ("after", "max")}.items()}
        ok = sum(1 for r in rows if r["missing"] == 0 and r["closed"] == 0)
        print(f"{fault:14s} {ok}/{len(rows)} runs complete with no socket closed; during p50 {med['during_p50']} ms,"
              f" p95 {med['during_p95']} ms; after p95 {med['after_p95']} ms, max {med['after_max']} ms; settled "
              f"max {max(r['settled_after_fault_s'] for r in rows)} s")
    if args.json:
        args.json.write_text(json.dumps({"cpu": platform.processor() or platform.machine(), "results": results},
                                        indent=2))


if __name__ == "__main__":
    asyncio.run(main())

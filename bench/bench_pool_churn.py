"""The pool under a steady load above MIN: how many connections it opens, and what a query costs.

Run: .venv/bin/python bench/bench_pool_churn.py [--pg postgresql://postgres@127.0.0.1:5432]
     [--concurrency 8] [--think-ms 2] [--seconds 10] [--min 5] [--max 20]
     (before/after: PYTHONPATH=<export of the old tree>/src .venv/bin/python bench/bench_pool_churn.py ...)

A fresh database; a `Database` with the given pool bounds; `--concurrency` tasks each running
`db.read()` + `SELECT 1` in a loop, with a random pause of 0 to 2x `--think-ms` between queries
(so the number of connections in use at once varies around its mean, as requests do), for a 2 s
warm-up, then `--seconds` measured:
queries per second, this process's CPU per query, p50 / p95 of a query (checkout included), and
the pool's `connects` during the measured part (`pool_stats()`, = `tableforge_db_pool_connects_total`).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from tableforge.config import Settings
from tableforge.db.engine import Database


async def run(args: argparse.Namespace, url: str) -> str:
    settings = Settings(database_url=url, data_dir=Path(tempfile.mkdtemp()), db_pool_min=args.min,
                        db_pool_max=args.max, instance_id="bench-pool-churn")
    db = Database(settings)
    latencies: list[float] = []
    measuring = False
    stop = False

    async def worker() -> None:
        while not stop:
            t = time.perf_counter()
            async with db.read() as conn:
                await conn.execute(sa.text("SELECT 1"))
            if measuring:
                latencies.append(time.perf_counter() - t)
            await asyncio.sleep(random.uniform(0, 2 * args.think_ms / 1000))

    tasks = [asyncio.create_task(worker()) for _ in range(args.concurrency)]
    await asyncio.sleep(2)
    connects0, cpu0, t0 = db.pool_stats()[0]["connects"], time.process_time(), time.perf_counter()
    measuring = True
    await asyncio.sleep(args.seconds)
    measuring = False
    connects1, cpu1, t1 = db.pool_stats()[0]["connects"], time.process_time(), time.perf_counter()
    stop = True
    await asyncio.gather(*tasks)
    size = db.pool_stats()[0]["size"]
    await db.dispose()
    n = len(latencies)
    q = statistics.quantiles(latencies, n=20)
    return (f"concurrency {args.concurrency}, think {args.think_ms} ms, MIN {args.min} / MAX {args.max}: "
            f"{n / (t1 - t0):.0f} queries/s, "
            f"CPU {(cpu1 - cpu0) / n * 1e6:.0f} µs/query, p50 {statistics.median(latencies) * 1000:.2f} ms, "
            f"p95 {q[18] * 1000:.2f} ms, connects {connects1 - connects0} in {t1 - t0:.1f} s "
            f"({(connects1 - connects0) / n * 100:.1f} per 100 queries), pool size at the end {size}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--think-ms", type=float, default=2)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--min", type=int, default=5)
    ap.add_argument("--max", type=int, default=20)
    args = ap.parse_args()
    name = f"pool_churn_{uuid.uuid4().hex[:10]}"
    subprocess.run(["psql", f"{args.pg}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
    try:
        print(asyncio.run(run(args, f"{args.pg}/{name}")))
    finally:
        subprocess.run(["psql", f"{args.pg}/postgres", "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                       check=True)


if __name__ == "__main__":
    main()

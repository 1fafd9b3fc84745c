"""What one new PostgreSQL connection costs, as the pool opens it (asyncpg, our connect arguments).

Run: .venv/bin/python bench/bench_pg_connect.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]
     [--connects 200] [--repeat 3]

For each `ssl` variant (`prefer`: asyncpg's default when TABLEFORGE_DB_SSL_MODE is unset; `disable`),
alternating, `--repeat` rounds of `--connects` sequential connect + `SELECT 1` + close: the wall time
per connection, this process's CPU per connection, and the CPU of the PostgreSQL backend that served
it (its schedstat read just before the close: the backend's start-up, authentication and our session
settings) and of the postmaster (the fork; other clients' connections meanwhile count too).
PostgreSQL on this machine only (for /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

import asyncpg


def on_cpu(pid: int) -> float:
    """Seconds process `pid` has run on a CPU (schedstat: nanoseconds, exact; /proc/<pid>/stat counts
    10 ms ticks, too coarse for a backend that lives a few ms)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def one_round(dsn: str, ssl: str, n: int, postmaster: int) -> tuple[float, float, float, float]:
    """(wall ms, client CPU ms, backend CPU ms, postmaster CPU ms) per connection. The postmaster
    forks every backend; its CPU also counts other clients' connections made meanwhile."""
    kwargs: dict[str, Any] = {"server_settings": {"statement_timeout": "30000", "application_name": "bench-connect",
                                                  "jit": "off"}, "timeout": 10}
    if ssl != "prefer":
        kwargs["ssl"] = ssl
    backend = 0.0
    wall, cpu, pm = time.perf_counter(), time.process_time(), on_cpu(postmaster)
    for _ in range(n):
        conn = await asyncpg.connect(dsn, **kwargs)
        await conn.fetchval("SELECT 1")
        backend += on_cpu(conn.get_server_pid())
        await conn.close()
    wall, cpu, pm = time.perf_counter() - wall, time.process_time() - cpu, on_cpu(postmaster) - pm
    return wall / n * 1000, cpu / n * 1000, backend / n * 1000, pm / n * 1000


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--connects", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    probe = await asyncpg.connect(args.pg)
    postmaster = parent_of(probe.get_server_pid())
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, server ssl = {await probe.fetchval('SHOW ssl')}, "
          f"load {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    await probe.close()
    results: dict[str, list[tuple[float, float, float, float]]] = {"prefer": [], "disable": []}
    for _ in range(args.repeat):
        for ssl in results:
            results[ssl].append(await one_round(args.pg, ssl, args.connects, postmaster))
    for ssl, rows in results.items():
        wall, cpu, be, pm = (statistics.median(r[i] for r in rows) for i in range(4))
        print(f"ssl={ssl}: per connection, medians of {args.repeat}: wall {wall:.2f} ms, client CPU {cpu:.2f} ms, "
              f"PostgreSQL backend {be:.2f} ms + postmaster {pm:.2f} ms of CPU  (rounds, wall/client/backend/"
              "postmaster: " + ", ".join("/".join(f"{x:.2f}" for x in r) for r in rows) + ")")


if __name__ == "__main__":
    asyncio.run(main())

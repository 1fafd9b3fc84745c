"""What one new PostgreSQL connection costs, as the pool opens it (asyncpg, our connect arguments).

Run: .venv/bin/python bench/bench_pg_connect.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]
     [--connects 200] [--repeat 3]

For each `ssl` variant (`prefer`: asyncpg's default when TABLEFORGE_DB_SSL_MODE is unset; `disable`),
alternating, `--repeat` rounds of `--connects` sequential connect + `SELECT 1` + close: the wall time
per connection, this process's CPU per connection, and the CPU of the PostgreSQL backend that served
it (its `/proc/<pid>/stat` read just before the close: the backend's start-up, authentication and our
session settings; the postmaster's fork is not in it). PostgreSQL on this machine only (for /proc).
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

TICK = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def one_round(dsn: str, ssl: str, n: int) -> tuple[float, float, float]:
    """(wall ms, client CPU ms, backend CPU ms) per connection."""
    kwargs: dict[str, Any] = {"server_settings": {"statement_timeout": "30000", "application_name": "bench-connect",
                                                  "jit": "off"}, "timeout": 10}
    if ssl != "prefer":
        kwargs["ssl"] = ssl
    backend = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        conn = await asyncpg.connect(dsn, **kwargs)
        await conn.fetchval("SELECT 1")
        backend += backend_cpu(conn.get_server_pid())
        await conn.close()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall / n * 1000, cpu / n * 1000, backend / n * 1000


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--connects", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    probe = await asyncpg.connect(args.pg)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, server ssl = {await probe.fetchval('SHOW ssl')}, "
          f"load {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    await probe.close()
    results: dict[str, list[tuple[float, float, float]]] = {"prefer": [], "disable": []}
    for _ in range(args.repeat):
        for ssl in results:
            results[ssl].append(await one_round(args.pg, ssl, args.connects))
    for ssl, rows in results.items():
        wall, cpu, be = (statistics.median(r[i] for r in rows) for i in range(3))
        print(f"ssl={ssl}: per connection, medians of {args.repeat}: wall {wall:.2f} ms, client CPU {cpu:.2f} ms, "
              f"PostgreSQL backend CPU {be:.2f} ms  (rounds: "
              + ", ".join(f"{r[0]:.2f}/{r[1]:.2f}/{r[2]:.2f}" for r in rows) + ")")


if __name__ == "__main__":
    asyncio.run(main())

"""Client CPU per Redis round trip: redis-py with `socket_timeout` (a `wait_for` task per write, a timeout block
per reply), without any limit, and `TimedRedis` (one deadline per round trip, src/tableforge/redis_client.py).

Run: .venv/bin/python bench/bench_redis_client.py [--gets 20000] [--pipelines 300] [--rounds 3]

Against the Redis at 127.0.0.1:6379 (keys and channel under `tableforge:bench-redis-client:`), on uvloop as the
server runs. Per variant: process CPU time per GET (one after another) and per pipeline of 20 PUBLISH of 200
bytes, the median of `--rounds` rounds taken in turns.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from tableforge.redis_client import TimedRedis

URL = "redis://127.0.0.1:6379/0"
KEY, CHANNEL = "tableforge:bench-redis-client:k", b"tableforge:bench-redis-client:c"
VARIANTS = ("socket_timeout", "no limit", "TimedRedis")


def client(variant: str) -> aioredis.Redis:
    if variant == "TimedRedis":
        return TimedRedis(connection_pool=aioredis.ConnectionPool.from_url(URL, socket_timeout=None), io_timeout=2.0)
    return aioredis.Redis.from_url(URL, socket_timeout=2.0 if variant == "socket_timeout" else None)


async def one_round(variant: str, gets: int, pipelines: int) -> tuple[float, float]:
    r = client(variant)
    try:
        await r.set(KEY, "v")
        for _ in range(500):  # warm: connection, parser
            await r.get(KEY)
        start = time.process_time()
        for _ in range(gets):
            await r.get(KEY)
        per_get = (time.process_time() - start) / gets
        start = time.process_time()
        for _ in range(pipelines):
            async with r.pipeline(transaction=False) as pipe:
                for _ in range(20):
                    pipe.publish(CHANNEL, b"x" * 200)
                await pipe.execute()
        per_pipeline = (time.process_time() - start) / pipelines
        await r.delete(KEY)
        return per_get, per_pipeline
    finally:
        await r.aclose()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gets", type=int, default=20000)
    ap.add_argument("--pipelines", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            results[variant].append(await one_round(variant, args.gets, args.pipelines))
    base_get = statistics.median(g for g, _ in results["socket_timeout"])
    base_pipe = statistics.median(p for _, p in results["socket_timeout"])
    print(f"{'variant':15s} {'GET µs':>8s} {'÷ base':>7s} {'pipeline(20) µs':>16s} {'÷ base':>7s}")
    for variant, rows in results.items():
        g, p = statistics.median(x for x, _ in rows), statistics.median(y for _, y in rows)
        print(f"{variant:15s} {g * 1e6:8.1f} {g / base_get:7.2f} {p * 1e6:16.0f} {p / base_pipe:7.2f}")


if __name__ == "__main__":
    uvloop.run(main())

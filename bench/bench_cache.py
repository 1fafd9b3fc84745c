"""Cache micro-benchmarks: what a hit costs in each tier, and what hit rate a bounded tier 1 gets.

Run: .venv/bin/python bench/bench_cache.py [--redis-url redis://127.0.0.1:6379/9] [--quick]

Prints p50/p95/p99 latency (µs) of sequential gets from
  - tier 1 (Cache.get_or_load answered from memory),
  - tier 2 (RedisTier.get: one GET plus header/decompress/decode),
  - a raw redis-py GET of the same bytes (the floor tier 2 is built on),
for a small and a large (compressed) value; MGET of 100 keys through the tier and raw; and the
tier-1 hit rate of each eviction policy on a Zipf-distributed key mix. Keys live under a
unique `tableforge:cache:bench-…:` prefix that is deleted at the end. Runs in well under 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import redis.asyncio

from tableforge.cache import Cache, CacheSettings, Codec
from tableforge.cache.entry import Entry
from tableforge.cache.redis_tier import RedisTier

SMALL = {"id": 42, "name": "The Sunken Crypt", "owner": 7, "players": [1, 2, 3, 4], "map": "crypt.png"}
LARGE = {"tokens": [{"id": i, "name": f"Skeleton {i}", "x": i * 3, "y": i * 7, "hp": 13} for i in range(150)]}


def percentiles(samples_ns: list[int]) -> str:
    ordered = sorted(samples_ns)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    return f"p50 {pick(0.50):8.1f}   p95 {pick(0.95):8.1f}   p99 {pick(0.99):8.1f}   (n={len(ordered)})"


async def measure(op: Callable[[], Awaitable[Any]], n: int, warmup: int = 200) -> list[int]:
    return (await measure_interleaved({"op": op}, n, warmup))["op"]


async def measure_interleaved(
    ops: dict[str, Callable[[], Awaitable[Any]]], n: int, warmup: int = 200
) -> dict[str, list[int]]:
    """Alternate the ops sample by sample, so drift in the machine's load hits them all alike."""
    for _ in range(warmup):
        for op in ops.values():
            await op()
    samples: dict[str, list[int]] = {name: [] for name in ops}
    clock = time.perf_counter_ns
    for _ in range(n):
        for name, op in ops.items():
            start = clock()
            await op()
            samples[name].append(clock() - start)
    return samples


def zipf_keys(universe: int, s: float, n: int, seed: int = 7) -> list[str]:
    weights = [1.0 / (rank**s) for rank in range(1, universe + 1)]
    cumulative = list(itertools.accumulate(weights))
    rng = random.Random(seed)
    total = cumulative[-1]
    ranks = [bisect.bisect_left(cumulative, rng.random() * total) for _ in range(n)]
    # Shuffle rank → key so that popularity is not correlated with insertion order.
    names = [f"room:{i}" for i in range(universe)]
    rng.shuffle(names)
    return [names[r] for r in ranks]


async def bench_hit_rate(requests: int) -> None:
    universe, size = 10_000, 1_000
    print(f"\nTier-1 hit rate, Zipf key mix: {universe} keys, tier 1 holds {size}, {requests} gets")
    for s in (0.9, 1.1):
        keys = zipf_keys(universe, s, requests)
        row = []
        for policy in ("lru", "lfu", "ttl"):
            cache = Cache(CacheSettings(max_size=size, eviction=policy, default_ttl=3600))  # type: ignore[arg-type]

            async def load() -> dict[str, int]:
                return {"v": 1}

            for key in keys:
                await cache.get_or_load(key, load)
            row.append(f"{policy} {cache.stats()['memory']['hit_rate']:6.1%}")
            await cache.close()
        print(f"  zipf s={s}:  " + "   ".join(row))


async def bench_redis(url: str, n: int) -> None:
    prefix = f"tableforge:cache:bench-{uuid.uuid4().hex[:8]}:"
    cache = Cache(CacheSettings(redis_url=url, prefix=prefix, instance_id="bench", max_size=10_000))
    await cache.start()
    # The cache's own Redis tier (the same class, codec and prefix as the cache's), measured alone.
    tier = RedisTier(url, codec=Codec(), prefix=prefix)
    await tier.start()
    raw = redis.asyncio.Redis.from_url(url)
    try:
        if not cache.healthy:
            print(f"\nRedis at {url} is not reachable: tier-2 numbers skipped")
            return
        print(f"\nSequential get latency, µs ({url})")
        for label, value in (("small", SMALL), ("large", LARGE)):
            key = f"bench:{label}"

            async def load(value: Any = value) -> Any:
                return value

            await cache.get_or_load(key, load)
            payload = await raw.get(tier.data_key(key))
            assert payload is not None
            size = f"{len(payload)} B stored" + (", zstd" if payload[0] & 0x80 else "")
            print(f"  {label} value ({size})")
            memory = await measure(lambda k=key, f=load: cache.get_or_load(k, f), n * 4)
            print(f"    tier 1  Cache.get_or_load   {percentiles(memory)}")
            raw_key = tier.data_key(key)
            pair = await measure_interleaved(
                {"tier": lambda k=key: tier.get(k), "raw": lambda k=raw_key: raw.get(k)}, n
            )
            print(f"    tier 2  RedisTier.get       {percentiles(pair['tier'])}")
            print(f"    raw     redis-py GET        {percentiles(pair['raw'])}")

        keys = [f"bench:m{i}" for i in range(100)]
        expires = time.time() + 600
        await tier.mset([(k, Entry(SMALL, expires), 600.0) for k in keys])
        raw_keys = [tier.data_key(k) for k in keys]

        async def tier_mget() -> None:
            found = await tier.mget(keys)
            assert len(found) == 100

        async def cache_many() -> None:
            cache.memory.clear()  # force the tier-2 path
            found = await cache.get_many_or_load(keys, loader_never)
            assert len(found) == 100

        async def loader_never(missing: list[str]) -> dict[str, Any]:
            raise AssertionError(f"unexpected load of {len(missing)} keys")

        many = await measure_interleaved(
            {"tier": tier_mget, "cache": cache_many, "raw": lambda: raw.mget(raw_keys)}, n // 4, warmup=20
        )
        print("\nMGET of 100 small values, µs")
        print(f"    tier 2  RedisTier.mget      {percentiles(many['tier'])}")
        print(f"    tier 2  get_many_or_load    {percentiles(many['cache'])}")
        print(f"    raw     redis-py MGET       {percentiles(many['raw'])}")
    finally:
        await cache.invalidate_pattern("*")
        await cache.close()
        await tier.close()
        await raw.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    args = parser.parse_args()
    started = time.perf_counter()
    n = 1_000 if args.quick else 5_000
    print(f"python {sys.version.split()[0]}, asyncio default loop; latencies include the await")
    await bench_redis(args.redis_url, n)
    await bench_hit_rate(20_000 if args.quick else 100_000)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings and up
    asyncio.run(main())

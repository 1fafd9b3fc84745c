"""What the broker's capped Redis stream cost before it was removed (2026-11-30, docs/benchmarks.md).

20,000 stored-event publishes over 200 rooms, pipelined 64 at a time as the broker's writer sends
them: the old EVALSHA (XADD + EXPIRE + PUBLISH) against a plain PUBLISH, median of 7 rounds each,
alternating. Uses the Redis on 127.0.0.1:6379 under a unique `tableforge:bench-…` prefix, deleted
afterwards (SCAN + UNLINK). Run: .venv/bin/python bench/bench_stream_cost.py
"""
import asyncio
import statistics
import time
import uuid

from redis.asyncio import Redis

SCRIPT = """
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'v', ARGV[4], 'e', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"""
async def main():
    r = Redis()
    sha = await r.script_load(SCRIPT)
    ns = f"tableforge:bench-{uuid.uuid4().hex[:8]}:"
    event = (b'{"type":"token.moved","room_id":"%s","version":1234,"ts":1700000000000.0,"by":"u",'
             b'"token_id":"t","x":1.0,"y":2.0,"token_version":3}' % uuid.uuid4().hex.encode())
    body = b"1234|1700000000000.000|inst/abc|" + event
    N, B = 20000, 64
    async def run(stream):
        t = time.perf_counter()
        for start in range(0, N, B):
            async with r.pipeline(transaction=False) as p:
                for i in range(start, min(N, start + B)):
                    room = f"{ns}room:{i % 200}"
                    if stream:
                        p.evalsha(sha, 1, f"{ns}stream:{i % 200}", room, body, 1000, i, 86400)
                    else:
                        p.publish(room, body)
                await p.execute()
        return (time.perf_counter() - t) / N * 1e6
    res = {True: [], False: []}
    for _ in range(7):
        for s in (True, False):
            res[s].append(await run(s))
    print("with stream   us/event:", round(statistics.median(res[True]), 2))
    print("publish only  us/event:", round(statistics.median(res[False]), 2))
    keys = [k async for k in r.scan_iter(match=ns + "*", count=1000)]
    if keys:
        await r.unlink(*keys)
    await r.aclose()

if __name__ == "__main__":
    asyncio.run(main())

"""TimedRedis over the real Redis: a round trip that outlasts the limit (a connection gone silent, which
without a limit would wait forever) raises redis-py's own TimeoutError, for a command, a script and a pipeline;
the silent connection is dropped, and the next call works on a fresh one. (How long it takes is not asserted
here: timing belongs in benchmarks.)"""

from __future__ import annotations

import pytest
import redis.asyncio
from redis.exceptions import TimeoutError as RedisTimeoutError

from tableforge.redis_client import TimedRedis
from tests.support.proxy import TcpProxy


async def test_a_silent_connection_times_out_and_is_replaced(redis_proxy: TcpProxy, prefix: str) -> None:
    pool = redis.asyncio.ConnectionPool.from_url(f"redis://127.0.0.1:{redis_proxy.port}/0", socket_timeout=None)
    client = TimedRedis(connection_pool=pool, io_timeout=0.3)
    script = client.register_script("return redis.call('GET', KEYS[1])")
    try:
        await client.set(f"{prefix}k", "v")
        assert await script(keys=[f"{prefix}k"]) == b"v"
        async with client.pipeline(transaction=True) as pipe:
            assert await pipe.get(f"{prefix}k").incr(f"{prefix}n").execute() == [b"v", 1]

        for attempt in ("command", "script", "pipeline"):
            assert redis_proxy.freeze() == 1  # the one pooled connection goes silent
            with pytest.raises(RedisTimeoutError):
                if attempt == "command":
                    await client.get(f"{prefix}k")
                elif attempt == "script":
                    await script(keys=[f"{prefix}k"])
                else:
                    async with client.pipeline(transaction=False) as pipe:
                        await pipe.get(f"{prefix}k").get(f"{prefix}n").execute()
            # The silent connection was dropped: the next call opens a new one through the proxy.
            assert await client.get(f"{prefix}k") == b"v", attempt
    finally:
        await client.aclose()

"""Redis going away and coming back, for one instance, through a TCP proxy we can cut.

Instance A talks to Redis through the proxy; instance B talks to it directly and keeps
working. What A missed while cut off must not be served once it is back, and what A
invalidated while cut off must reach Redis and B when it is back.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from .conftest import MakeCache
from .support import TcpProxy, wait_until


async def test_instance_cut_off_from_redis_recovers_by_itself(
    make_cache: MakeCache, redis_proxy: TcpProxy, redis_url: str
) -> None:
    db: dict[str, Any] = {"k": "k1", "w": "w1"}
    reads: list[str] = []

    def loader(key: str):  # type: ignore[no-untyped-def]
        async def load() -> Any:
            reads.append(key)
            return db[key]

        return load

    db_number = urlparse(redis_url).path or "/9"
    a = await make_cache(redis_url=f"redis://127.0.0.1:{redis_proxy.port}{db_number}")
    b = await make_cache()
    assert a.healthy and b.healthy
    assert await b.get_or_load("w", loader("w")) == "w1"  # in b's tier 1

    await redis_proxy.stop()
    await wait_until(lambda: not a.healthy, what="a to notice the outage")

    # Cut off, a still answers, from the loader.
    assert await a.get_or_load("k", loader("k")) == "k1"
    assert a.stats()["redis"]["healthy"] is False
    # b changes k and invalidates it; a cannot hear that.
    db["k"] = "k2"
    await b.delete("k")
    # a changes w and invalidates it; Redis and b cannot hear that yet.
    db["w"] = "w2"
    await a.delete("w")
    assert a.stats()["redis"]["pending_invalidations"] == 1

    await redis_proxy.start()
    await wait_until(lambda: a.healthy, what="a to reconnect and resubscribe")
    await wait_until(lambda: b.stats()["invalidations"]["received"] >= 1, what="a's replayed delete")

    # a flushed tier 1 when it resubscribed, so it does not serve the k it loaded while deaf.
    assert await a.get_or_load("k", loader("k")) == "k2"
    # a's delete of w was replayed: Redis and b's tier 1 both dropped w1.
    assert await b.get_or_load("w", loader("w")) == "w2"
    stats = a.stats()
    assert stats["redis"]["pending_invalidations"] == 0
    assert stats["invalidations"]["local_flushes"] >= 2

"""Faults under load, on two real instances: Redis restarted, one instance cut off from Redis, and
PostgreSQL restarted (fast, immediate) or down for 4 s. Six players, three per instance, each commit
20 moves a second throughout.

After each fault, what a player must see: every version of the room on every socket (pushed by the
server, live or through the `room.resync` it sends; the test clients never poll), no acked move lost,
no healthy socket closed, and `/ready` telling the truth during and after. Private Redis and
PostgreSQL servers: the shared ones are never stopped. How long recovery takes is measured by
`bench/bench_faults.py`, not asserted here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.client import Api, Ws
from tests.support.cluster import Cluster
from tests.support.fault_load import Table
from tests.support.private_postgres import PrivatePostgres
from tests.support.private_redis import PrivateRedis
from tests.support.proxy import TcpProxy
from tests.support.waiting import eventually, wait_until

CATCH_UP_BOUND = 30.0  # a bound so that a broken instance fails the test instead of hanging it




async def _status(url: str) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        try:
            return str((await http.get(f"{url}/ready")).json()["status"])
        except (httpx.HTTPError, ValueError, KeyError):
            return "unreachable"


async def _ready_is(urls: list[str], status: str, within: float = 20.0) -> None:
    async def check() -> bool:
        return [await _status(u) for u in urls] == [status] * len(urls)

    await eventually(check, within, f"/ready {status!r} on {urls}", poll=0.1)


async def _presence_fallbacks(url: str) -> float:
    """Presence calls this instance had to answer without Redis (tableforge_presence_fallbacks_total)."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{url}/metrics")).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == "tableforge_presence_fallbacks_total")


async def _moves(table: Table, count: int) -> None:
    """Let the load run until `count` more moves were acked (instead of sleeping)."""
    start = sum(len(seat.acked) for seat in table.seats)
    await wait_until(lambda: sum(len(seat.acked) for seat in table.seats) >= start + count, 30, f"{count} moves")


async def _settled(table: Table, api_url: str) -> None:
    """Stop the load, then every socket must get every version; no acked move is lost; nobody closed."""
    await table.finish()
    async with Api(api_url) as api:
        gm_token = table.seats[0].token
        snap = (await api.http.get(f"/api/rooms/{table.room_id}",
                                   headers={"Authorization": f"Bearer {gm_token}"})).json()
    latest = int(snap["room"]["version"])
    assert latest >= table.latest_acked()
    await wait_until(lambda: table.complete(latest), CATCH_UP_BOUND,
                     f"every socket has every version up to {latest}: missing {table.missing(latest)}")
    positions = {t["id"]: t["x"] for t in snap["tokens"]}
    for seat in table.seats:
        if seat.acked:
            last = seat.acked[max(seat.acked)]
            assert positions[seat.token_id] >= last, f"{seat.name}: acked x={last}, stored {positions[seat.token_id]}"
    assert [seat.close_code for seat in table.seats] == [None] * len(table.seats), "a healthy socket was closed"


@pytest.fixture
async def table_on() -> AsyncIterator[list[Table]]:
    tables: list[Table] = []
    yield tables
    for table in tables:
        await table.close()


async def test_redis_restart_every_socket_gets_every_version(private_redis: PrivateRedis, pg_url: str,
                                                               tmp_path: Path, table_on: list[Table]) -> None:
    cluster = Cluster(2, pg_url, private_redis.url, tmp_path / "data").start()
    urls = [s.base_url for s in cluster.servers]
    try:
        table = Table(urls[0], urls)
        table_on.append(table)
        await table.setup()
        table.start()
        await _moves(table, 60)
        await asyncio.to_thread(private_redis.stop)
        await _ready_is(urls, "degraded")
        await _moves(table, 200)  # ~2 s of play without Redis: each instance keeps its sockets current
        await asyncio.to_thread(private_redis.start)
        await _ready_is(urls, "ok")
        fallbacks = [await _presence_fallbacks(u) for u in urls]
        await _moves(table, 60)
        for seat in table.seats:  # presence calls on every instance's pooled connections, after the restart
            extra = await Ws.connect(seat.url, seat.token)
            assert (await extra.request("join", room_id=table.room_id))["type"] == "ack"
            assert (await extra.request("leave", room_id=table.room_id))["type"] == "ack"
            await extra.close()
        await _moves(table, 60)
        await _settled(table, urls[1])
        assert sum(sum(seat.refused.values()) for seat in table.seats) == 0, "a move was refused"
        assert [await _presence_fallbacks(u) for u in urls] == fallbacks, "a presence call failed after Redis was back"
    finally:
        cluster.stop()


async def test_one_instance_cut_off_from_redis_catches_up(pg_url: str, redis_url: str, tmp_path: Path,
                                                          table_on: list[Table]) -> None:
    proxy = TcpProxy("127.0.0.1", int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    await proxy.start()
    cluster = Cluster(2, pg_url, redis_url, tmp_path / "data")
    cluster.servers[0].env["TABLEFORGE_REDIS_URL"] = f"redis://127.0.0.1:{proxy.port}/0"
    # In a thread, start and stop alike: the proxy forwards on this event loop, and an instance whose
    # Redis went silent would wait at start-up (and at its stop) for a timeout.
    await asyncio.to_thread(cluster.start)
    urls = [s.base_url for s in cluster.servers]
    try:
        table = Table(urls[1], urls)
        table_on.append(table)
        await table.setup()
        table.start()
        await _moves(table, 60)
        await proxy.stop()  # instance 0 loses Redis; instance 1 keeps it
        await _ready_is([urls[0]], "degraded")
        assert await _status(urls[1]) == "ok"
        await _moves(table, 200)
        await proxy.start()
        await _ready_is(urls, "ok")
        await _moves(table, 60)
        await _settled(table, urls[1])
    finally:
        await asyncio.to_thread(cluster.stop)
        await proxy.stop()


async def test_postgres_restarts_and_outage(tmp_path: Path, redis_url: str, table_on: list[Table]) -> None:
    pg = PrivatePostgres(tmp_path / "pg")
    try:
        pg.start()
        cluster = Cluster(2, pg.create_database("tableforge"), redis_url, tmp_path / "data",
                          TABLEFORGE_DB_CONNECTION_TIMEOUT="3").start()
        urls = [s.base_url for s in cluster.servers]
        try:
            table = Table(urls[0], urls)
            table_on.append(table)
            await table.setup()
            async with Api(urls[0]) as api:
                latecomer = await api.register("late")  # a session no instance has cached yet
            table.start()
            for fault in ("fast", "immediate", "outage"):
                await _moves(table, 60)
                if fault == "outage":
                    await asyncio.to_thread(pg.stop, "fast")
                    await _ready_is(urls, "down")
                    # A valid token that cannot be checked now: "try again later" (1013), never the
                    # 4401 that would make a client log its user out.
                    late = await Ws.connect(table.seats[0].url, latecomer.token)
                    assert await late.closed_with() == 1013
                    await asyncio.sleep(4)  # the outage itself: the load goes on meanwhile
                    await asyncio.to_thread(pg.start)
                else:
                    await asyncio.to_thread(pg.restart, fault)
                await _ready_is(urls, "ok")
                await _moves(table, 60)
            await _settled(table, urls[1])
            refused = {code for seat in table.seats for code in seat.refused}
            assert refused <= {"db_unavailable", "db_timeout", "db_pool_exhausted", "no_reply"}, refused
        finally:
            cluster.stop()
    finally:
        pg.close()

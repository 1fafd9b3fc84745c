"""The instance CPU of `join`'s reads on PostgreSQL: through the pool and SQLAlchemy, or on a lane.

Run: .venv/bin/python bench/bench_join_reads.py [--pg postgresql://postgres@127.0.0.1:5432]
     [--calls 300] [--blocks 7] [--events 5]

A fresh database with one room of two players and `--events` stored chat messages. In one process,
blocks of `--calls` sequential calls take turns (A B A B …), each timed with `time.process_time()`
(this process's CPU only: PostgreSQL's own work is not in it):
- `membership`: the role / open / players' scene read, `TransactionalEventLog.membership` (a pool
  checkout, a SQLAlchemy Core statement) against `PgEventLog.membership` (a prepared statement on a lane);
- `since`: the missed events (`since` = current - events), the same two ways;
- `raw`: asking SQLAlchemy for a lane's asyncpg connection (`get_raw_connection`, what every lane
  statement did before) against the kept one, plus one `SELECT 1` each.
Prints the median µs of CPU per call over the blocks and the ratio lane / pool.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa

from tableforge.config import Settings
from tableforge.db.changes import PostMessage
from tableforge.db.engine import Database
from tableforge.db.event_log import TransactionalEventLog
from tableforge.db.migrate import upgrade
from tableforge.db.pg_event_log import PgEventLog
from tableforge.db.schema import game_rooms, room_players, scenes, users


async def seed(db: Database, log: PgEventLog, events: int) -> tuple[str, str]:
    room_id, gm_id, alice_id, scene_id = (str(uuid.uuid4()) for _ in range(4))
    now = datetime.now(UTC)
    async with db.write() as conn:
        for uid in (gm_id, alice_id):
            await conn.execute(sa.insert(users).values(id=uid, username=uid[:30], password_hash="x", created_at=now))
        await conn.execute(sa.insert(game_rooms).values(id=room_id, name="r", gm_id=gm_id, invite_code=room_id[:16],
                                                        created_at=now, players_scene_id=scene_id))
        await conn.execute(sa.insert(scenes).values(id=scene_id, room_id=room_id, name="s", position=0, grid={},
                                                    fog={"base": "revealed", "shapes": []}, created_at=now))
        for uid, role in ((gm_id, "gm"), (alice_id, "player")):
            await conn.execute(sa.insert(room_players).values(room_id=room_id, user_id=uid, role=role,
                                                              joined_at=now))
    for i in range(events):
        await log.append(room_id, PostMessage(alice_id, "alice", str(uuid.uuid4()), f"hi {i}", None, now))
    return room_id, alice_id


async def block(calls: int, fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.process_time()
    for _ in range(calls):
        await fn()
    return 1e6 * (time.process_time() - t0) / calls


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--blocks", type=int, default=7)
    ap.add_argument("--events", type=int, default=5)
    args = ap.parse_args()
    name = f"bjr_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"{args.pg}/postgres")
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        db = Database(Settings(database_url=f"{args.pg}/{name}", data_dir=Path(tempfile.mkdtemp())))
        await upgrade(db)
        log = PgEventLog(db, 100)
        room_id, user_id = await seed(db, log, args.events)
        current = (await log.since(room_id, 0))[0]
        lane = await log._lanes.acquire()

        async def raw_then_ping() -> None:
            raw: asyncpg.Connection = (await lane.get_raw_connection()).driver_connection
            await raw.execute("SELECT 1")

        async def kept_then_ping() -> None:
            await log._lanes.raw(lane).execute("SELECT 1")

        pairs: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]] = {
            "membership": (lambda: TransactionalEventLog.membership(log, room_id, user_id),
                           lambda: log.membership(room_id, user_id)),
            "since": (lambda: TransactionalEventLog.since(log, room_id, current - args.events),
                      lambda: log.since(room_id, current - args.events)),
            "raw": (raw_then_ping, kept_then_ping),
        }
        for pool, lanes in pairs.values():  # warm both (statement caches, pool connections)
            await block(50, pool)
            await block(50, lanes)
        print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.blocks} blocks of {args.calls} calls")
        for what, (pool, lanes) in pairs.items():
            a, b = [], []
            for _ in range(args.blocks):
                a.append(await block(args.calls, pool))
                b.append(await block(args.calls, lanes))
            ma, mb = statistics.median(a), statistics.median(b)
            ratios = sorted(y / x for x, y in zip(a, b, strict=True))
            print(f"{what:>10}: pool/SQLAlchemy {ma:6.1f} µs CPU/call, lane {mb:6.1f} µs  ratio {mb / ma:.2f} "
                  f"(per block {ratios[0]:.2f}..{ratios[-1]:.2f})", flush=True)
        log._lanes.release(lane)
        await db.dispose()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())

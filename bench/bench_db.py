"""Hot-query benchmark on PostgreSQL: a generated realistic data set in a fresh database.

Run: .venv/bin/python bench/bench_db.py [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--samples 2000]

Data: 10,000 users, 2,000 rooms (5 players, 20 assets, 50 tokens, 30 messages and 100 stored events each),
500 systems; ANALYZEd. Prints p50/p95/p99 (ms, client side through the app's pool, pre-ping included)
of each hot query on random rooms, then the token-update write throughput (UPDATE … version + 1 by
id, one transaction each) with 20 connections for 10 s. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg
import sqlalchemy as sa

from tableforge.config import Settings
from tableforge.db import reports
from tableforge.db.engine import Database
from tableforge.db.migrate import upgrade
from tableforge.db.schema import board_tokens, room_events
from tableforge.services import rooms, systems

GENERATE = [
    """INSERT INTO users (id, username, password_hash, created_at)
       SELECT gen_random_uuid(), 'u' || g, 'x', now() FROM generate_series(1, 10000) g""",
    """INSERT INTO game_systems (id, name, description, category, complexity, is_public, is_official, download_count,
                                 rating_avg, rating_count, template, created_at, updated_at)
       SELECT gen_random_uuid(), 'System ' || g, 'about ' || g, (ARRAY['fantasy','scifi','horror','modern'])[1 + g % 4],
              (ARRAY['light','medium','heavy'])[1 + g % 3], g % 10 <> 0, g % 50 = 0, g * 7 % 1000, (g % 5)::float,
              g % 20, '{"sheets": []}'::jsonb, now() - g * interval '1 hour', now() FROM generate_series(1, 500) g""",
    """INSERT INTO game_rooms (id, name, gm_id, game_system_id, invite_code, is_active, version, created_at)
       SELECT gen_random_uuid(), 'Room ' || g, u.id, s.id, upper(substr(md5(g::text), 1, 10)), g % 7 <> 0, 100, now()
       FROM generate_series(1, 2000) g
       JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM users) u ON u.n = g * 5
       JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM game_systems) s ON s.n = 1 + g % 500""",
    """INSERT INTO room_players (room_id, user_id, role, is_online, joined_at)
       SELECT r.id, u.id, CASE WHEN k = 0 THEN 'gm' ELSE 'player' END, k % 2 = 0, now()
       FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM game_rooms) r CROSS JOIN generate_series(0, 4) k
       JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM users) u ON u.n = (r.rn * 5 + k) % 10000""",
    """INSERT INTO game_assets (id, room_id, uploader_id, name, type, sha256, file_path, width, height, size,
                               created_at)
       SELECT gen_random_uuid(), r.id, r.gm_id, 'asset ' || g, 'png', md5(r.id::text || g) || md5(g::text), 'x',
              256, 256, 10000, now() + g * interval '1 second' FROM game_rooms r, generate_series(1, 20) g""",
    """INSERT INTO board_tokens (id, room_id, asset_id, owner_id, x, y, z_index, created_at)
       SELECT gen_random_uuid(), r.id, a.id, r.gm_id, g * 10, g * 5, g % 5, now()
       FROM game_rooms r CROSS JOIN generate_series(1, 50) g
       JOIN game_assets a ON a.room_id = r.id AND a.name = 'asset ' || (1 + g % 20)""",
    """INSERT INTO room_messages (id, room_id, user_id, kind, text, version, created_at)
       SELECT gen_random_uuid(), r.id, r.gm_id, 'chat', 'hello ' || g, g, now()
       FROM game_rooms r, generate_series(1, 30) g""",
    """INSERT INTO room_events (room_id, version, body)
       SELECT r.id, g, '{"type":"token.moved"}' FROM game_rooms r, generate_series(1, 100) g""",
    # migration 0004: every room has its players' scene, holding its tokens
    """INSERT INTO scenes (id, room_id, name, position, grid, fog, created_at)
       SELECT gen_random_uuid(), r.id, 'Scene 1', 0, '{}'::jsonb, '{"base": "revealed", "shapes": []}'::jsonb, now()
       FROM game_rooms r""",
    """UPDATE game_rooms r SET players_scene_id = s.id FROM scenes s WHERE s.room_id = r.id""",
    """UPDATE board_tokens t SET scene_id = r.players_scene_id FROM game_rooms r WHERE r.id = t.room_id""",
]


def pct(samples: list[float]) -> str:
    s = sorted(samples)
    at = lambda q: s[min(len(s) - 1, int(q * len(s)))] * 1000  # noqa: E731
    return f"{at(0.50):7.3f} {at(0.95):7.3f} {at(0.99):7.3f}   (mean {statistics.fmean(s) * 1000:.3f}, n={len(s)})"


async def measure(name: str, samples: int, run: Callable[[], Awaitable[Any]]) -> None:
    for _ in range(min(50, samples)):
        await run()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        await run()
        times.append(time.perf_counter() - start)
    print(f"{name:28s} {pct(times)}")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--write-seconds", type=float, default=10.0)
    args = ap.parse_args()
    name = f"tableforge_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0] + f"/{name}"
    db = Database(Settings(database_url=url, data_dir=Path("/tmp/tableforge-bench"), db_pool_min=20, db_pool_max=20,
                           db_slow_query_ms=10_000))
    try:
        await upgrade(db)
        start = time.perf_counter()
        async with db.write() as conn:
            for sql in GENERATE:
                await conn.execute(sa.text(sql))
        async with db.read() as conn:
            await conn.rollback()
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(sa.text("VACUUM ANALYZE"))
            room_ids = [str(r) for r in (await conn.execute(sa.text(
                "SELECT id FROM game_rooms WHERE is_active"))).scalars()]
            token_ids = [str(r) for r in (await conn.execute(sa.text(
                "SELECT id FROM board_tokens ORDER BY random() LIMIT 20000"))).scalars()]
            counts = (await conn.execute(sa.text(
                "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM game_rooms), "
                "(SELECT count(*) FROM game_assets), (SELECT count(*) FROM board_tokens), "
                "(SELECT count(*) FROM game_systems)"))).one()
        print(f"data set: users={counts[0]} rooms={counts[1]} assets={counts[2]} tokens={counts[3]} "
              f"systems={counts[4]} (generated in {time.perf_counter() - start:.1f} s)")
        print(f"{'query':28s} {'p50':>7s} {'p95':>7s} {'p99':>7s}  ms")

        async def snapshot() -> None:
            async with db.read() as conn:
                await rooms.read_snapshot(conn, random.choice(room_ids), is_gm=False)

        async def players() -> None:
            async with db.read() as conn:
                await conn.execute(rooms._players_query(random.choice(room_ids), online=True))

        async def catalog(category: str | None) -> None:
            async with db.read() as conn:
                await conn.execute(*systems.catalog_query(category=category, complexity=None, text=None,
                                                         page=random.randint(1, 5), limit=20))

        async def events_since() -> None:
            async with db.read() as conn:
                await conn.execute(sa.select(room_events.c.version, room_events.c.body).where(
                    room_events.c.room_id == random.choice(room_ids), room_events.c.version > 80,
                    room_events.c.version <= 100).order_by(room_events.c.version))

        async def token_update() -> None:
            async with db.write() as conn:
                await conn.execute(sa.update(board_tokens).where(board_tokens.c.id == random.choice(token_ids))
                                   .values(x=random.random() * 1000, y=random.random() * 1000,
                                           version=board_tokens.c.version + 1).returning(board_tokens.c.version))

        n = args.samples
        await measure("snapshot (1 statement)", n, snapshot)
        await measure("active players", n, players)
        await measure("catalog page", n, lambda: catalog(None))
        await measure("catalog page, category", n, lambda: catalog("fantasy"))
        await measure("room_events since", n, events_since)
        await measure("token update by id (1 conn)", n, token_update)

        done = 0
        stop = time.perf_counter() + args.write_seconds

        async def writer() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await token_update()
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(20)))
        elapsed = time.perf_counter() - t0
        print(f"token update throughput, 20 connections: {done / elapsed:,.0f} commits/s ({done} in {elapsed:.1f} s)")
        print("pool:", db.pool_stats()[0])
        # Server-side execution time (pg_stat_statements), which the shared machine's load inflates less.
        report = await reports.slow_queries(db, limit=100)
        if report["available"]:
            print(f"{'server-side (pg_stat_statements)':40s} {'calls':>7s} {'mean ms':>8s} {'max ms':>8s}")
            for q in sorted(report["queries"], key=lambda q: -int(q["calls"]))[:8]:
                print(f"{q['query'][:40]:40s} {q['calls']:7d} {q['mean_exec_time_ms']:8.3f} "
                      f"{q['max_exec_time_ms']:8.2f}")
    finally:
        await db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())

"""Stored room changes through the services, as the app makes them: `token.move` and `chat.message`.

Run: .venv/bin/python bench/bench_event_log.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]
     [--sqlite] [--samples 2000] [--seconds 5]

A fresh database (PostgreSQL, or SQLite in a temp dir with --sqlite) with 200 rooms, one player
token each; the runtime is the embedded one (`wiring.backends.build_runtime`, in-process broker, no
sockets). Prints p50/p95/p99 (ms) of one `tokens.move` and one `chat.send` at a time, then the move
throughput with 20 concurrent movers on distinct rooms for `--seconds`. Only public service calls,
so the same script measures any branch (the event log refactor was measured with it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg
import sqlalchemy as sa

from tableforge.config import Settings
from tableforge.db.migrate import upgrade
from tableforge.db.schema import board_tokens, game_assets, game_rooms, room_players, scenes, users
from tableforge.services import chat, tokens
from tableforge.wiring.backends import build_runtime

ROOMS = 200


def pct(samples: list[float]) -> str:
    s = sorted(samples)
    at = lambda q: s[min(len(s) - 1, int(q * len(s)))] * 1000  # noqa: E731
    return f"{at(0.50):7.3f} {at(0.95):7.3f} {at(0.99):7.3f}   (mean {statistics.fmean(s) * 1000:.3f}, n={len(s)})"


async def measure(name: str, samples: int, run: Callable[[int], Awaitable[Any]]) -> None:
    for i in range(min(50, samples)):
        await run(i)
    times = []
    for i in range(samples):
        start = time.perf_counter()
        await run(i)
        times.append(time.perf_counter() - start)
    print(f"{name:28s} {pct(times)}")


async def bench(settings: Settings, samples: int, seconds: float) -> None:
    rt = build_runtime(settings)
    await upgrade(rt.db)
    now, user = datetime.now(UTC), str(uuid.uuid4())
    rooms = [(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(ROOMS)]  # room, asset, token
    async with rt.db.write() as conn:
        await conn.execute(sa.insert(users).values(id=user, username="bench", password_hash="x", created_at=now))
        for room, asset, token in rooms:
            scene = str(uuid.uuid4())  # every room has its players' scene (migration 0004)
            await conn.execute(sa.insert(game_rooms).values(id=room, name="r", gm_id=user, invite_code=room[:16],
                                                            created_at=now))
            await conn.execute(sa.insert(scenes).values(id=scene, room_id=room, name="s", position=0, grid={},
                                                        fog={"base": "revealed", "shapes": []}, created_at=now))
            await conn.execute(sa.update(game_rooms).where(game_rooms.c.id == room).values(players_scene_id=scene))
            await conn.execute(sa.insert(room_players).values(room_id=room, user_id=user, role="player",
                                                              joined_at=now))
            await conn.execute(sa.insert(game_assets).values(
                id=asset, room_id=room, uploader_id=user, name="a", type="png", sha256="ab" * 32, file_path="x",
                width=1, height=1, size=1, created_at=now))
            await conn.execute(sa.insert(board_tokens).values(id=token, room_id=room, asset_id=asset, owner_id=user,
                                                              x=0, y=0, created_at=now, scene_id=scene))
    try:
        print(f"{'change':28s} {'p50':>7s} {'p95':>7s} {'p99':>7s}  ms")

        async def move(i: int) -> None:
            room, _, token = rooms[i % ROOMS]
            await tokens.move(rt, user, "player", room, token, float(i), float(i), None)

        async def say(i: int) -> None:
            await chat.send(rt, user, "bench", rooms[i % ROOMS][0], f"hello {i}")

        await measure("token.move (1 at a time)", samples, move)
        await measure("chat.message (1 at a time)", samples, say)
        done = 0
        stop = time.perf_counter() + seconds

        async def mover(k: int) -> None:
            nonlocal done
            i = k
            while time.perf_counter() < stop:
                await move(i)
                done += 1
                i += 20  # mover k only touches rooms k, k + 20, …: no two movers wait on one room's lock

        t0 = time.perf_counter()
        await asyncio.gather(*(mover(k) for k in range(20)))
        elapsed = time.perf_counter() - t0
        print(f"token.move throughput, 20 movers: {done / elapsed:,.0f} moves/s ({done} in {elapsed:.1f} s)")
    finally:
        await rt.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--sqlite", action="store_true")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.sqlite:
            await bench(Settings(data_dir=Path(tmp)), args.samples, args.seconds)
            return
        name = f"tableforge_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = args.pg.rsplit("/", 1)[0] + f"/{name}"
            await bench(Settings(database_url=url, data_dir=Path(tmp), db_pool_min=20, db_pool_max=20),
                        args.samples, args.seconds)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())

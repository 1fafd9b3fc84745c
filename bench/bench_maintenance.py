"""What the maintenance jobs cost the players: `token.move` latency and the event loop's lag while
the event_history and sessions jobs delete a large backlog, against the same moves with no job; and
what the event log's in-line history pruning (every 100th version) costs a move, against none.

Run: .venv/bin/python bench/bench_maintenance.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]
     [--sqlite] [--rooms 200] [--backlog 2000] [--sessions 50000] [--samples 1500] [--pairs 3]

A fresh database (PostgreSQL, or SQLite in a temp dir) with `--rooms` rooms and a token each, the
embedded runtime (`wiring.backends.build_runtime`), moves made one at a time through the services.
"During jobs": every room holds `--backlog` events beyond TABLEFORGE_WS_HISTORY_SIZE (1000) and the
sessions table `--sessions` long-dead sessions, and both jobs run while the moves are timed. The
pruning comparison moves in `--prune-rooms` rooms (1: every 100th move prunes 100 events) and
alternates on/off `--pairs` times; medians of the runs are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg
import sqlalchemy as sa

from tableforge.config import Settings
from tableforge.db import event_log, pg_event_log
from tableforge.db.migrate import upgrade
from tableforge.db.schema import board_tokens, game_assets, game_rooms, room_events, room_players, sessions, users
from tableforge.observability.logging import configure_logging
from tableforge.services import tokens
from tableforge.services.maintenance import runner
from tableforge.services.runtime import Runtime
from tableforge.wiring.backends import build_runtime


def fmt(p: tuple[float, float, float] | list[float]) -> str:
    return " ".join(f"{v:7.3f}" for v in p)


def pcts(samples: list[float]) -> tuple[float, float, float]:
    s = sorted(samples)
    at = lambda q: s[min(len(s) - 1, int(q * len(s)))] * 1000  # noqa: E731
    return at(0.50), at(0.95), at(0.99)


class LoopLag:
    """How late a 10 ms timer fires, while it runs."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.01
            await asyncio.sleep(0.01)
            self.lags.append(max(0.0, loop.time() - due))

    def __enter__(self) -> LoopLag:
        self.task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self.task is not None
        self.task.cancel()


async def setup(rt: Runtime, rooms_n: int) -> tuple[str, list[tuple[str, str]]]:
    await upgrade(rt.db)
    now, user = datetime.now(UTC), str(uuid.uuid4())
    rooms = [(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(rooms_n)]
    async with rt.db.write() as conn:
        await conn.execute(sa.insert(users).values(id=user, username="bench", password_hash="x", created_at=now))
        await conn.execute(sa.insert(game_rooms), [{"id": r, "name": "r", "gm_id": user, "invite_code": r[:16],
                                                    "created_at": now} for r, _, _ in rooms])
        await conn.execute(sa.insert(room_players), [{"room_id": r, "user_id": user, "role": "player", "joined_at": now}
                                                     for r, _, _ in rooms])
        await conn.execute(sa.insert(game_assets), [
            {"id": a, "room_id": r, "uploader_id": user, "name": "a", "type": "png", "sha256": "ab" * 32,
             "file_path": "x", "width": 1, "height": 1, "size": 1, "created_at": now} for r, a, _ in rooms])
        await conn.execute(sa.insert(board_tokens), [
            {"id": t, "room_id": r, "asset_id": a, "owner_id": user, "x": 0, "y": 0, "created_at": now}
            for r, a, t in rooms])
    return user, [(r, t) for r, _, t in rooms]


async def add_backlog(rt: Runtime, rooms: list[tuple[str, str]], backlog: int, dead_sessions: int,
                      user: str) -> None:
    """`backlog` events below each room's kept history, and `dead_sessions` sessions dead for 30 days."""
    history = rt.settings.ws_history_size
    async with rt.db.write() as conn:
        versions = dict((await conn.execute(sa.select(game_rooms.c.id, game_rooms.c.version))).all())
        for room, _ in rooms:
            top = int(versions[room])
            start = top + 1
            await conn.execute(sa.insert(room_events), [{"room_id": room, "version": v, "body": "{}"}
                                                        for v in range(start, start + backlog + history)])
            await conn.execute(sa.update(game_rooms).where(game_rooms.c.id == room)
                               .values(version=start + backlog + history - 1))
        old = datetime.now(UTC) - timedelta(days=30)
        for i in range(0, dead_sessions, 5000):
            await conn.execute(sa.insert(sessions), [
                {"token_hash": uuid.uuid4().hex + uuid.uuid4().hex, "user_id": user, "created_at": old,
                 "expires_at": old + timedelta(hours=1), "revoked_at": None}
                for _ in range(min(5000, dead_sessions - i))])


async def moves(rt: Runtime, user: str, rooms: list[tuple[str, str]], samples: int, until: asyncio.Future[Any] | None
                = None) -> list[float]:
    """Time moves one at a time: `samples` of them, or (with `until`) as many as fit before it is done."""
    times = []
    i = 0
    while (len(times) < samples) if until is None else not until.done():
        room, token = rooms[i % len(rooms)]
        start = time.perf_counter()
        await tokens.move(rt, user, "player", room, token, float(i), float(i), None)
        times.append(time.perf_counter() - start)
        i += 1
        # A server's moves come from sockets, with I/O between them. Without this yield one loop of
        # back-to-back moves takes SQLite's single writer connection again before a waiting job can.
        await asyncio.sleep(0)
    return times


def set_prune_every(value: int) -> None:
    event_log.PRUNE_EVERY = value
    pg_event_log.PRUNE_EVERY = value  # type: ignore[attr-defined]


async def bench(settings: Settings, args: argparse.Namespace) -> None:
    configure_logging("bench", "ERROR", json=False)  # not the slow-statement warnings of the set-up
    rt = build_runtime(settings)
    await rt.cache.start()
    try:
        user, rooms = await setup(rt, args.rooms)
        await moves(rt, user, rooms, 200)  # warm up
        print(f"backend: {rt.db.dialect}; rooms {args.rooms}; ms p50 / p95 / p99; loop lag ms p99 / max")
        with LoopLag() as lag:
            idle = await moves(rt, user, rooms, args.samples)
        print(f"token.move, no job          {fmt(pcts(idle))}   lag {pcts(lag.lags)[2]:6.2f} "
              f"{max(lag.lags) * 1000:6.2f}   n={len(idle)}")
        await add_backlog(rt, rooms, args.backlog, args.sessions, user)
        for job in ("event_history", "sessions"):
            with LoopLag() as lag:
                work = asyncio.ensure_future(runner.run_now(rt, job, trigger="api"))
                during = await moves(rt, user, rooms, 0, until=work)
                run = await work
            assert run is not None and run["outcome"] == "ok", run
            print(f"token.move, during {job:13s}{fmt(pcts(during))}   lag {pcts(lag.lags)[2]:6.2f} "
                  f"{max(lag.lags) * 1000:6.2f}   n={len(during)}; job {run['duration_seconds']:.2f} s:")
            print(f"    {run['summary']}")
        results: dict[str, list[tuple[float, float, float]]] = {"pruning every 100th": [], "no in-line pruning": []}
        order = (("pruning every 100th", 100), ("no in-line pruning", 10 ** 15))
        for pair in range(args.pairs):
            for label, every in order if pair % 2 == 0 else order[::-1]:  # ABBA: no side always goes first
                set_prune_every(every)
                results[label].append(pcts(await moves(rt, user, rooms[:args.prune_rooms], args.samples)))
        set_prune_every(100)
        for label, runs in results.items():
            med = [statistics.median(r[k] for r in runs) for k in range(3)]
            print(f"token.move, {label:19s}{fmt(med)}   (median of {len(runs)} runs)")
    finally:
        await rt.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--sqlite", action="store_true")
    ap.add_argument("--rooms", type=int, default=200)
    ap.add_argument("--backlog", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=50_000)
    ap.add_argument("--samples", type=int, default=1500)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--prune-rooms", type=int, default=1, help="rooms the pruning comparison moves in")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.sqlite:
            await bench(Settings(data_dir=Path(tmp), seed_catalog=False), args)
            return
        name = f"tableforge_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = args.pg.rsplit("/", 1)[0] + f"/{name}"
            await bench(Settings(database_url=url, data_dir=Path(tmp), seed_catalog=False, db_pool_min=10,
                                 db_pool_max=10), args)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())

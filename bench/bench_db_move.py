"""Database CPU per committed move: the event log's write path alone, open loop at a fixed rate.

Run: .venv/bin/python bench/bench_db_move.py [--pg postgresql://postgres@127.0.0.1:5432/postgres | --sqlite]
     [--rooms 100] [--tokens 10] [--rate 1000] [--seconds 15] [--fog] [--repeat 3]

A fresh database (PostgreSQL, dropped at the end; or SQLite in a temp dir) with `--rooms` rooms of
`--tokens` player tokens each; `rt.events.append(room, MoveToken(...))` as the `token.move` service
makes it (a player moving their own token: the owner guard), every token moved at `rate / (rooms x
tokens)` Hz with a random phase (open loop: concurrent moves of one room and of many rooms, as from
many sockets). `--fog` gives every room's scene a fog shape that covers no token (the room is no
longer fog-free, which is what decides the PostgreSQL path).

Reported per run, over the measured window (after 2 s of warm-up):
- committed moves/s and the append latency p50/p95/p99 (ms);
- PostgreSQL: the CPU of the server processes serving this database (`pg_stat_activity.datname`,
  backends and autovacuum workers, from /proc/<pid>/stat), in ms per committed move, plus the
  cluster's background writers (walwriter, checkpointer, bgwriter; shared with whatever else runs on
  the server, so reported apart); WAL bytes per move (`pg_stat_wal`, cluster-wide: approximate);
- this process's CPU per move (the app's side of the write; on SQLite it is the whole cost).
The machine's load average is printed with each run: compare ratios within one invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg
import sqlalchemy as sa

from tableforge.config import Settings
from tableforge.db.changes import MoveToken
from tableforge.db.migrate import upgrade
from tableforge.db.schema import board_tokens, game_assets, game_rooms, room_events, room_players, scenes, users
from tableforge.wiring.backends import build_runtime

TICK = os.sysconf("SC_CLK_TCK")
_BACKGROUND = ("walwriter", "checkpointer", "background writer")


def _cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


class PgCpu:
    """CPU seconds of the PostgreSQL processes serving one database (and, apart, the shared writers)."""

    def __init__(self, admin: asyncpg.Connection, dbname: str) -> None:
        self.admin, self.dbname = admin, dbname

    async def snapshot(self) -> tuple[dict[int, float], dict[int, float], int]:
        rows = await self.admin.fetch("SELECT pid, datname, backend_type FROM pg_stat_activity")
        mine = {r["pid"]: _cpu_s(r["pid"]) for r in rows if r["datname"] == self.dbname}
        shared = {r["pid"]: _cpu_s(r["pid"]) for r in rows if r["backend_type"] in _BACKGROUND}
        wal = int(await self.admin.fetchval("SELECT wal_bytes FROM pg_stat_wal"))
        return ({p: c for p, c in mine.items() if c is not None}, {p: c for p, c in shared.items() if c is not None},
                wal)

    @staticmethod
    def delta(before: dict[int, float], after: dict[int, float]) -> float:
        # A process that started within the window counts whole (its CPU is all in the window).
        return sum(c - before.get(p, 0.0) for p, c in after.items())


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000 if s else float("nan")


async def populate(rt: Any, rooms: int, tokens: int, fog: bool) -> list[tuple[str, str, str]]:
    """(room, token, owner) for every token; every token's owner is a player of its room."""
    now, out = datetime.now(UTC), []
    async with rt.db.write() as conn:
        gm = str(uuid.uuid4())
        await conn.execute(sa.insert(users).values(id=gm, username="gm", password_hash="x", created_at=now))
        owners = [str(uuid.uuid4()) for _ in range(tokens)]
        await conn.execute(sa.insert(users), [{"id": o, "username": f"p{i}", "password_hash": "x", "created_at": now}
                                              for i, o in enumerate(owners)])
        for _ in range(rooms):
            room, asset, scene = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
            await conn.execute(sa.insert(game_rooms).values(id=room, name="r", gm_id=gm, invite_code=room[:16],
                                                            created_at=now, fog_free=not fog))
            shapes = [{"type": "rect", "op": "hide", "x": -1000, "y": -1000, "width": 1, "height": 1}] if fog else []
            await conn.execute(sa.insert(scenes).values(id=scene, room_id=room, name="s", position=0, grid={},
                                                        fog={"base": "revealed", "shapes": shapes}, created_at=now))
            await conn.execute(sa.update(game_rooms).where(game_rooms.c.id == room).values(players_scene_id=scene))
            await conn.execute(sa.insert(game_assets).values(
                id=asset, room_id=room, uploader_id=gm, name="a", type="png", sha256="ab" * 32, file_path="x",
                width=1, height=1, size=1, created_at=now))
            await conn.execute(sa.insert(room_players), [{"room_id": room, "user_id": o, "role": "player",
                                                          "joined_at": now} for o in owners])
            toks = [str(uuid.uuid4()) for _ in owners]
            await conn.execute(sa.insert(board_tokens), [
                {"id": t, "room_id": room, "asset_id": asset, "owner_id": o, "x": 0, "y": 0, "created_at": now,
                 "scene_id": scene} for t, o in zip(toks, owners, strict=True)])
            out += [(room, t, o) for t, o in zip(toks, owners, strict=True)]
    return out


async def run(rt: Any, targets: list[tuple[str, str, str]], rate: float, seconds: float, pg: PgCpu | None
              ) -> dict[str, Any]:
    warm, lat, done, errors = 2.0, [], 0, 0
    hz = rate / len(targets)
    t0 = time.perf_counter()
    measure_from, stop = t0 + warm, t0 + warm + seconds
    snap: dict[str, Any] = {}

    async def mover(room: str, token: str, owner: str) -> None:
        nonlocal done, errors
        at = t0 + random.uniform(0, 1 / hz)
        i = 0
        while at < stop:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            started = time.perf_counter()
            i += 1
            try:
                await rt.events.append(room, MoveToken(owner, token, float(i), float(i % 7), owner, None))
            except Exception:
                errors += 1
            else:
                if measure_from <= started < stop:
                    lat.append(time.perf_counter() - started)
                    done += 1
            at += 1 / hz

    async def window() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        snap["cpu0"], snap["t0"] = time.process_time(), time.perf_counter()
        if pg is not None:
            snap["pg0"] = await pg.snapshot()
        await asyncio.sleep(max(0.0, stop - time.perf_counter()))
        snap["cpu1"], snap["t1"] = time.process_time(), time.perf_counter()
        if pg is not None:
            snap["pg1"] = await pg.snapshot()

    await asyncio.gather(window(), *(mover(*t) for t in targets))
    elapsed = snap["t1"] - snap["t0"]
    out: dict[str, Any] = {
        "moves_s": done / elapsed, "p50": pct(lat, .5), "p95": pct(lat, .95), "p99": pct(lat, .99), "errors": errors,
        "app_ms_per_move": 1000 * (snap["cpu1"] - snap["cpu0"]) / max(1, done), "load": os.getloadavg()[0]}
    if pg is not None:
        (m0, s0, w0), (m1, s1, w1) = snap["pg0"], snap["pg1"]
        out["db_ms_per_move"] = 1000 * PgCpu.delta(m0, m1) / max(1, done)
        out["db_core_pct"] = 100 * PgCpu.delta(m0, m1) / elapsed
        out["writers_ms_per_move"] = 1000 * PgCpu.delta(s0, s1) / max(1, done)
        out["wal_bytes_per_move"] = (w1 - w0) / max(1, done)
    return out


async def one(settings: Settings, args: argparse.Namespace, pg: PgCpu | None) -> list[dict[str, Any]]:
    rt = build_runtime(settings)
    await upgrade(rt.db)
    try:
        targets = await populate(rt, args.rooms, args.tokens, args.fog)
        results = []
        for _ in range(args.repeat):
            r = await run(rt, targets, args.rate, args.seconds, pg)
            print("  " + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()),
                  flush=True)
            results.append(r)
        async with rt.db.read() as conn:
            kept = (await conn.execute(sa.select(sa.func.count()).select_from(room_events))).scalar()
        print(f"  room_events rows at the end: {kept} ({args.rooms} rooms, history {settings.ws_history_size})")
        if pg is not None:  # how many row updates were HOT (no index entry written)
            async with rt.db.read() as conn:
                for name, upd, hot in (await conn.execute(sa.text(
                        "SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                        "WHERE relname IN ('game_rooms', 'board_tokens') ORDER BY relname"))).all():
                    print(f"  {name}: {upd} updates, {hot} HOT ({100 * hot / max(1, upd):.0f} %)")
        return results
    finally:
        await rt.close()


def summary(results: list[dict[str, Any]]) -> None:
    keys = [k for k in results[0] if k != "errors"]
    print("  median: " + "  ".join(f"{k}={statistics.median(r[k] for r in results):.3f}" for k in keys))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--sqlite", action="store_true")
    ap.add_argument("--rooms", type=int, default=100)
    ap.add_argument("--tokens", type=int, default=10)
    ap.add_argument("--rate", type=float, default=1000.0, help="moves per second over all tokens")
    ap.add_argument("--seconds", type=float, default=15.0, help="measured seconds per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fog", action="store_true", help="every room has a fog shape (not fog-free)")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}; {args}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.sqlite:
            summary(await one(Settings(data_dir=Path(tmp)), args, None))
            return
        name = f"tableforge_dbmove_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = args.pg.rsplit("/", 1)[0] + f"/{name}"
            summary(await one(Settings(database_url=url, data_dir=Path(tmp), db_pool_min=4, db_pool_max=20),
                              args, PgCpu(admin, name)))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())

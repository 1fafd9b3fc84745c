"""The cost of one `token.add`: client-visible latency, this process's CPU and the database round trips.

Run: .venv/bin/python bench/bench_token_add.py [--pg postgresql://postgres@127.0.0.1:5432/postgres | --sqlite]
     [--rooms 20] [--adds 2000] [--repeat 3] [--fog] [--system] [--gm]

A fresh database (PostgreSQL, dropped at the end; or SQLite in a temp dir) with `--rooms` rooms, each
with its players' scene, an asset and a player. Every add goes through `services.tokens.add`, the
function the WebSocket handler calls for `token.add` (check the fields, append the change to the event
log, publish the stored event to the hub), one after another over the rooms in turn (closed loop: what
one client waiting for its ack sees). `--system`: the rooms' game system has token_defaults with bars
only owners see (the official templates do: every add takes the defaults and stores per-audience
copies); `--fog`: every room's scene has a fog shape away from the tokens (the room is not fog-free);
`--gm`: the GM adds (the default: a player).

Reported per run (after `--warm` adds not measured):
- the latency of one add, p50/p95 (ms), and adds/s;
- this process's CPU per add (`time.process_time`: the server's side of the add, what a server
  instance spends on it);
- SQLite: statements per add (SQLAlchemy's cursor executions; BEGIN and COMMIT not included);
- PostgreSQL: round trips per add (the writes this process makes to the database's socket: each is
  one message flight the add waits for), and the CPU of the database's server processes per add.
The script only uses what every tree has (`services.tokens.add`, `build_runtime`), so the same file
measures an older tree: `PYTHONPATH=/tmp/old/src .venv/bin/python bench/bench_token_add.py`, down to
the trees before hidden information (`8e4b356`: no scenes, no roles in `tokens.add`; `--fog` and
`--gm` mean nothing there).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if "PYTHONPATH" not in os.environ:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from asyncio import selector_events

import asyncpg
import sqlalchemy as sa

from tableforge.config import Settings
from tableforge.db import schema
from tableforge.db.migrate import upgrade
from tableforge.db.schema import game_assets, game_rooms, game_systems, room_players, users
from tableforge.services import tokens
from tableforge.wiring.backends import build_runtime

TICK = os.sysconf("SC_CLK_TCK")
TEMPLATE = {"token_defaults": {"size": 1, "scale": 1.0, "bars": [
    {"key": "hp", "label": "HP", "value": 10, "max": 10, "color": "#c0392b", "visibility": "owners"},
    {"key": "ac", "label": "AC", "value": 10, "color": "#7f8c8d", "visibility": "owners"}]}}


class Writes:
    """Counts the writes to sockets whose peer is the database's port (asyncpg's protocol writes each
    flight of messages at once, then waits for the answer: one write is one round trip)."""

    def __init__(self, port: int) -> None:
        self.port, self.count = port, 0
        original = selector_events._SelectorSocketTransport.write
        counter = self

        def write(transport: Any, data: Any) -> None:
            peer = transport.get_extra_info("peername")
            if peer is not None and peer[1] == counter.port:
                counter.count += 1
            original(transport, data)

        selector_events._SelectorSocketTransport.write = write  # type: ignore[method-assign]


class Statements:
    """Counts the statements SQLAlchemy executes (every engine of the process)."""

    def __init__(self) -> None:
        self.count = 0

        def counted(*_: Any) -> None:
            self.count += 1

        sa.event.listen(sa.engine.Engine, "before_cursor_execute", counted)


def _cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


async def pg_cpu(admin: asyncpg.Connection, dbname: str) -> dict[int, float]:
    rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", dbname)
    return {p: c for p, c in ((r["pid"], _cpu_s(r["pid"])) for r in rows) if c is not None}


async def populate(rt: Any, rooms: int, fog: bool, system: bool) -> list[tuple[str, str, str, str]]:
    """(room, asset, player, gm) per room."""
    now, out = datetime.now(UTC), []
    async with rt.db.write() as conn:
        gm, player = str(uuid.uuid4()), str(uuid.uuid4())
        await conn.execute(sa.insert(users), [{"id": u, "username": n, "password_hash": "x", "created_at": now}
                                              for u, n in ((gm, "gm"), (player, "p"))])
        system_id = None
        if system:
            system_id = str(uuid.uuid4())
            await conn.execute(sa.insert(game_systems).values(
                id=system_id, name="bench", category="fantasy", complexity="light", template=TEMPLATE,
                created_at=now, updated_at=now))
        scenes = getattr(schema, "scenes", None)  # None: a tree before hidden information
        for _ in range(rooms):
            room, asset, scene = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
            extra = {"fog_free": not fog} if scenes is not None else {}
            await conn.execute(sa.insert(game_rooms).values(id=room, name="r", gm_id=gm, invite_code=room[:16],
                                                            created_at=now, game_system_id=system_id, **extra))
            if scenes is not None:
                shapes = [{"type": "rect", "op": "hide", "x": -1000, "y": -1000, "width": 1, "height": 1}] if fog \
                    else []
                await conn.execute(sa.insert(scenes).values(
                    id=scene, room_id=room, name="s", position=0, grid={}, fog={"base": "revealed", "shapes": shapes},
                    fog_count=len(shapes), fog_version=1 if fog else 0, created_at=now))
                await conn.execute(sa.update(game_rooms).where(game_rooms.c.id == room)
                                   .values(players_scene_id=scene))
            await conn.execute(sa.insert(game_assets).values(
                id=asset, room_id=room, uploader_id=gm, name="a", type="png", sha256="ab" * 32, file_path="x",
                width=1, height=1, size=1, created_at=now))
            await conn.execute(sa.insert(room_players), [{"room_id": room, "user_id": player, "role": "player",
                                                          "joined_at": now},
                                                         {"room_id": room, "user_id": gm, "role": "gm",
                                                          "joined_at": now}])
            out.append((room, asset, player, gm))
    return out


async def run(rt: Any, rooms: list[tuple[str, str, str, str]], adds: int, warm: int, as_gm: bool,
              writes: Writes | None, pg: tuple[asyncpg.Connection, str] | None,
              statements: Statements | None = None) -> dict[str, float]:
    lat: list[float] = []
    snap: dict[str, Any] = {}
    with_role = "role" in inspect.signature(tokens.add).parameters
    for i in range(warm + adds):
        if i == warm:
            snap["cpu0"], snap["t0"] = time.process_time(), time.perf_counter()
            snap["w0"] = writes.count if writes else 0
            snap["s0"] = statements.count if statements else 0
            if pg is not None:
                snap["pg0"] = await pg_cpu(*pg)
        room, asset, player, gm = rooms[i % len(rooms)]
        started = time.perf_counter()
        role: dict[str, Any] = {"role": "gm" if as_gm else "player"} if with_role else {}
        await tokens.add(rt, gm if as_gm else player, room, asset, float(i % 50), float(i % 37), 0.0, 1.0, 0, **role)
        if i >= warm:
            lat.append(time.perf_counter() - started)
    cpu, elapsed = time.process_time() - snap["cpu0"], time.perf_counter() - snap["t0"]
    if pg is not None:  # (read after the clocks: the CPU snapshot's own round trips are not counted)
        pg1 = await pg_cpu(*pg)
    lat.sort()
    out = {"adds_s": adds / elapsed, "p50_ms": 1000 * lat[len(lat) // 2], "p95_ms": 1000 * lat[int(.95 * len(lat))],
           "app_cpu_ms_per_add": 1000 * cpu / adds, "load": os.getloadavg()[0]}
    if statements is not None:
        out["statements_per_add"] = (statements.count - snap["s0"]) / adds
    if writes is not None and pg is not None:
        # the snapshot's own query ran on the admin connection, counted too: one write, taken off
        out["round_trips_per_add"] = (writes.count - snap["w0"] - 1) / adds
        out["db_cpu_ms_per_add"] = 1000 * sum(c - snap["pg0"].get(p, 0.0) for p, c in pg1.items()) / adds
    return out


async def one(settings: Settings, args: argparse.Namespace, pg: tuple[asyncpg.Connection, str] | None,
              writes: Writes | None) -> list[dict[str, float]]:
    rt = build_runtime(settings)
    await upgrade(rt.db)
    try:
        rooms = await populate(rt, args.rooms, args.fog, args.system)
        results = []
        statements = None if pg else Statements()  # one listener for every run
        for _ in range(args.repeat):
            r = await run(rt, rooms, args.adds, args.warm, args.gm, writes, pg, statements)
            print("  " + "  ".join(f"{k}={v:.3f}" for k, v in r.items()), flush=True)
            results.append(r)
        return results
    finally:
        await rt.close()


def summary(results: list[dict[str, float]]) -> None:
    print("  median: " + "  ".join(f"{k}={statistics.median(r[k] for r in results):.3f}" for k in results[0]))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--sqlite", action="store_true")
    ap.add_argument("--rooms", type=int, default=20)
    ap.add_argument("--adds", type=int, default=2000, help="measured adds per run")
    ap.add_argument("--warm", type=int, default=200, help="adds before each run's measurement")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fog", action="store_true", help="every room's scene has a fog shape (not fog-free)")
    ap.add_argument("--system", action="store_true", help="a game system with owners-only bars in token_defaults")
    ap.add_argument("--gm", action="store_true", help="the GM adds (default: a player)")
    args = ap.parse_args()
    import tableforge

    print(f"load average {os.getloadavg()}; code {Path(tableforge.__file__).parent}; {args}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.sqlite:
            summary(await one(Settings(data_dir=Path(tmp)), args, None, None))
            return
        name = f"tableforge_tokenadd_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = args.pg.rsplit("/", 1)[0] + f"/{name}"
            writes = Writes(int(sa.engine.make_url(url).port or 5432))
            summary(await one(Settings(database_url=url, data_dir=Path(tmp), db_pool_min=2, db_pool_max=10),
                              args, (admin, name), writes))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())

"""The PostgreSQL one-statement move (db/pg_event_log.py) of this tree against another tree's, alone.

Run: .venv/bin/python bench/bench_move_sql.py --other-src /path/to/other/tree/src [--rounds 400]
     [--pg postgresql://postgres@127.0.0.1:5432/postgres]

A fresh database at this tree's schema with one fog-free room and one player token; each round runs
the player's move statement of each tree once (alternating which goes first) under
`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`, which executes it. Prints, per tree, the median server-side
execution time and the shared buffers touched (hit + read) per move: the second does not depend on
the machine's load, so it tells a small change in the statement's work apart from the noise of a
shared machine. The other tree's statement must run on this tree's schema (true for a tree that
only adds columns).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg
import sqlalchemy as sa

from tableforge.config import Settings
from tableforge.db.engine import Database
from tableforge.db.event_body import TOKEN_VERSION, body_template
from tableforge.db.migrate import upgrade
from tableforge.db.pg_event_log import _MOVE_SQL
from tableforge.db.schema import board_tokens, game_assets, game_rooms, room_players, scenes, users

_PRINT_SQL = "from tableforge.db.pg_event_log import _MOVE_SQL; print(_MOVE_SQL[True, False])"


def other_sql(src: str) -> str:
    return subprocess.run([sys.executable, "-c", _PRINT_SQL], env={"PYTHONPATH": src}, check=True,
                          capture_output=True, text=True).stdout


async def setup(url: str, tmp: Path) -> tuple[str, str, str]:
    db = Database(Settings(database_url=url, data_dir=tmp))  # type: ignore[arg-type]
    await upgrade(db)
    now, user, room, asset, token, scene = datetime.now(UTC), *(str(uuid.uuid4()) for _ in range(5))
    async with db.write() as conn:
        await conn.execute(sa.insert(users).values(id=user, username="bench", password_hash="x", created_at=now))
        await conn.execute(sa.insert(game_rooms).values(id=room, name="r", gm_id=user, invite_code=room[:16],
                                                        created_at=now))
        await conn.execute(sa.insert(scenes).values(id=scene, room_id=room, name="s", position=0, grid={},
                                                    fog={"base": "revealed", "shapes": []}, created_at=now))
        await conn.execute(sa.update(game_rooms).where(game_rooms.c.id == room).values(players_scene_id=scene))
        await conn.execute(sa.insert(room_players).values(room_id=room, user_id=user, role="player", joined_at=now))
        await conn.execute(sa.insert(game_assets).values(
            id=asset, room_id=room, uploader_id=user, name="a", type="png", sha256="ab" * 32, file_path="x",
            width=1, height=1, size=1, created_at=now))
        await conn.execute(sa.insert(board_tokens).values(id=token, room_id=room, asset_id=asset, owner_id=user,
                                                          x=0, y=0, created_at=now, scene_id=scene))
    await db.dispose()
    return room, token, user


def _buffers(plan: dict[str, Any]) -> int:
    """Shared buffers hit + read by the whole statement. A node's counts include what ran beneath it;
    the root (the final SELECT over `tok`, which scans `room`) leaves out only `ev`, the CTE nothing
    reads, which runs at the end: root + ev."""
    def blocks(node: dict[str, Any]) -> int:
        return int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))

    ev = next(n for n in plan.get("Plans", []) if n.get("Subplan Name") == "CTE ev")
    return blocks(plan) + blocks(ev)


async def run(url: str, other: str, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        room, token, user = await setup(url, Path(tmp))
    conn = await asyncpg.connect(url)
    try:
        pieces = body_template("token.moved", room, 1.0, user, {"token_id": token, "x": 1.0, "y": 1.0,
                                                                "token_version": TOKEN_VERSION}).pieces
        trees = {"other": (other, (room, token, 1.0, 1.0, *pieces, user)),
                 "this": (_MOVE_SQL[True, False], (room, token, 1.0, 1.0, *pieces, user, user))}
        results: dict[str, tuple[list[float], list[int]]] = {name: ([], []) for name in trees}
        for i in range(rounds):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for name in order:
                sql, args = trees[name]
                raw = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *args)
                plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
                if i >= 20:  # warm-up rounds not counted
                    results[name][0].append(float(plan["Execution Time"]))
                    results[name][1].append(_buffers(plan["Plan"]))
        await conn.execute("DELETE FROM room_events WHERE room_id = $1", room)
        for name, (times, buffers) in results.items():
            print(f"{name:6s} execution p50 {statistics.median(times):.3f} ms (mean {statistics.fmean(times):.3f}), "
                  f"shared buffers per move p50 {statistics.median(buffers):.0f} (n={len(times)})")
    finally:
        await conn.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--other-src", required=True)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--rounds", type=int, default=400)
    args = ap.parse_args()
    name = f"tableforge_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await run(args.pg.rsplit("/", 1)[0] + f"/{name}", other_sql(args.other_src), args.rounds)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())

"""Each hot query uses its index on a realistic data set (PostgreSQL plans; ANALYZEd).

The data: 2,000 users, 2,000 rooms with 5 players, 10 assets, 20 tokens, 10 messages and 50 stored
events each, 500 systems. Big enough that a sequential scan would be the planner's choice if
the index were missing or unusable."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from tableforge.db.engine import Database
from tableforge.db.schema import board_tokens, room_events
from tableforge.services import rooms, snapshots, systems

GENERATE = [
    """INSERT INTO users (id, username, password_hash, created_at)
       SELECT gen_random_uuid(), 'u' || g, 'x', now() FROM generate_series(1, 2000) g""",
    """INSERT INTO game_systems (id, name, description, category, complexity, is_public, is_official, download_count,
                                 rating_avg, rating_count, template, created_at, updated_at)
       SELECT gen_random_uuid(), 'System ' || g, 'about ' || g, (ARRAY['fantasy','scifi','horror','modern'])[1 + g % 4],
              (ARRAY['light','medium','heavy'])[1 + g % 3], g % 10 <> 0, g % 50 = 0, g * 7 % 1000, (g % 5)::float,
              g % 20, '{}'::jsonb, now() - g * interval '1 hour', now() FROM generate_series(1, 500) g""",
    """INSERT INTO game_rooms (id, name, gm_id, game_system_id, invite_code, is_active, version, created_at)
       SELECT gen_random_uuid(), 'Room ' || g, u.id, s.id, upper(substr(md5(g::text), 1, 10)),
              g % 7 <> 0, 100, now() FROM generate_series(1, 2000) g
       JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM users) u ON u.n = g
       JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM game_systems) s ON s.n = 1 + g % 500""",
    """INSERT INTO room_players (room_id, user_id, role, is_online, joined_at)
       SELECT r.id, u.id, CASE WHEN k = 0 THEN 'gm' ELSE 'player' END, k % 2 = 0, now()
       FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM game_rooms) r
       CROSS JOIN generate_series(0, 4) k
       JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM users) u ON u.n = (r.rn * 5 + k) % 2000""",
    """INSERT INTO game_assets (id, room_id, uploader_id, name, type, sha256, file_path, width, height, size,
                               created_at)
       SELECT gen_random_uuid(), r.id, r.gm_id, 'asset ' || g, 'png', md5(r.id::text || g) || md5(g::text), 'x', 64,
              64, 1000, now() + g * interval '1 second' FROM game_rooms r, generate_series(1, 10) g""",
    """INSERT INTO board_tokens (id, room_id, asset_id, owner_id, x, y, z_index, created_at)
       SELECT gen_random_uuid(), a.room_id, a.id, a.uploader_id, g * 10, g * 5, g % 5, now()
       FROM game_assets a, generate_series(1, 2) g""",
    """INSERT INTO room_messages (id, room_id, user_id, kind, text, version, created_at)
       SELECT gen_random_uuid(), r.id, r.gm_id, 'chat', 'hello ' || g, g, now() FROM game_rooms r,
              generate_series(1, 10) g""",
    """INSERT INTO room_events (room_id, version, body)
       SELECT r.id, g, '{}' FROM game_rooms r, generate_series(1, 50) g""",
    # migration 0004: three scenes per room, the first one the players'; tokens spread over them
    """INSERT INTO scenes (id, room_id, name, position, grid, fog, created_at)
       SELECT gen_random_uuid(), r.id, 'Scene ' || g, g, '{}'::jsonb, '{}'::jsonb, now()
       FROM game_rooms r, generate_series(0, 2) g""",
    """UPDATE game_rooms r SET players_scene_id = s.id FROM scenes s WHERE s.room_id = r.id AND s.position = 0""",
    """UPDATE board_tokens t SET scene_id = s.id FROM scenes s
       WHERE s.room_id = t.room_id AND s.position = (abs(hashtext(t.id::text)) % 3)""",
]


@pytest.fixture(scope="module")
async def loaded(pg_db: Database) -> AsyncIterator[dict[str, Any]]:
    async with pg_db.write() as conn:
        for sql in GENERATE:
            await conn.execute(sa.text(sql))
    async with pg_db.read() as conn:
        await conn.rollback()
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.execute(sa.text("ANALYZE"))
    async with pg_db.read() as conn:
        room_id = str((await conn.execute(sa.text("SELECT id FROM game_rooms WHERE is_active LIMIT 1"))).scalar())
        token_id = str((await conn.execute(sa.text("SELECT id FROM board_tokens LIMIT 1"))).scalar())
    yield {"room_id": room_id, "token_id": token_id}


async def _plan(db: Database, statement: sa.Executable) -> dict[str, Any]:
    sql = str(statement.compile(dialect=postgresql.dialect(),  # type: ignore[attr-defined]
                                compile_kwargs={"literal_binds": True}))
    async with db.read() as conn:
        raw = (await conn.execute(sa.text("EXPLAIN (FORMAT JSON) " + sql))).scalar()
    doc = raw if isinstance(raw, list) else json.loads(str(raw))
    return doc[0]["Plan"]  # type: ignore[no-any-return]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(_nodes(child))
    return out


def _indexes(plan: dict[str, Any]) -> set[str]:
    return {n["Index Name"] for n in _nodes(plan) if "Index Name" in n}


def _seq_scanned(plan: dict[str, Any]) -> set[str]:
    return {n["Relation Name"] for n in _nodes(plan) if n["Node Type"] == "Seq Scan"}


async def test_snapshot_reads_every_part_through_its_index(pg_db: Database, loaded: dict[str, Any]) -> None:
    # the HTTP snapshot's statement (the caller's role read inside it), as a player reads it
    statement = snapshots.snapshot_statement(loaded["room_id"], as_member=True).params(
        room_id=loaded["room_id"], user_id=str(uuid.uuid4()), scene_id=None, user_audience="%u:someone%")
    plan = await _plan(pg_db, statement)
    used = _indexes(plan)
    assert {"pk_game_rooms", "pk_room_players", "ix_game_assets_room_created",
            "ix_room_messages_room_version"} <= used
    # The scene's tokens by the room's or the scene's index (the planner's call for 20 a room), the
    # scene itself by its key or the room's scenes index.
    assert used & {"ix_board_tokens_scene_order", "ix_board_tokens_room_order", "ix_board_tokens_room_id"}
    assert used & {"pk_scenes", "ix_scenes_room_position"}
    # Only `users` may be scanned (joined by primary key or hashed, the planner's call), never a room's lists.
    assert _seq_scanned(plan) <= {"users"}


async def test_active_players_use_the_room_key(pg_db: Database, loaded: dict[str, Any]) -> None:
    plan = await _plan(pg_db, rooms._players_query(loaded["room_id"], online=True))
    assert "pk_room_players" in _indexes(plan)
    assert "room_players" not in _seq_scanned(plan)


async def test_token_update_by_id_uses_the_primary_key(pg_db: Database, loaded: dict[str, Any]) -> None:
    stmt = sa.update(board_tokens).where(board_tokens.c.id == loaded["token_id"]).values(
        x=1.0, y=2.0, version=board_tokens.c.version + 1)
    plan = await _plan(pg_db, stmt)
    assert "pk_board_tokens" in _indexes(plan) and not _seq_scanned(plan)


async def test_room_events_since_use_the_primary_key(pg_db: Database, loaded: dict[str, Any]) -> None:
    stmt = (sa.select(room_events.c.version, room_events.c.body)
            .where(room_events.c.room_id == loaded["room_id"], room_events.c.version > 40,
                   room_events.c.version <= 50)
            .order_by(room_events.c.version))
    plan = await _plan(pg_db, stmt)
    assert "pk_room_events" in _indexes(plan) and not _seq_scanned(plan)


@pytest.mark.parametrize("category", [None, "fantasy"])
async def test_catalog_search_pages_through_an_index(pg_db: Database, loaded: dict[str, Any],
                                                     category: str | None) -> None:
    query, params = systems.catalog_query(category=category, complexity=None, text=None, page=2, limit=20)
    plan = await _plan(pg_db, query.params(params))
    if category is None:  # the unfiltered page is read in catalog order from its index, up to the limit
        assert "ix_game_systems_catalog" in _indexes(plan)
    # (a category is ~1/4 of 500 systems: a scan and a top-N sort is the planner's right call there)
    # Usage: one aggregate over the rooms (scan or partial index: the planner's call at this size),
    # never a correlated subquery or a loop per system.
    assert not any(n.get("Subplan Name", "").startswith("SubPlan") for n in _nodes(plan))
    rooms_reads = [n for n in _nodes(plan) if n.get("Relation Name") == "game_rooms"]
    assert len(rooms_reads) == 1
    assert not any(n["Node Type"] == "Nested Loop" and any(c.get("Relation Name") == "game_rooms"
                                                            for c in n.get("Plans", [])[1:]) for n in _nodes(plan))


async def test_catalog_query_results_match_the_old_counts(pg_db: Database, loaded: dict[str, Any]) -> None:
    async with pg_db.read() as conn:
        rows = (await conn.execute(*systems.catalog_query(category="fantasy", complexity=None, text=None,
                                                         page=1, limit=10))).mappings().all()
        expected_total = (await conn.execute(sa.text(
            "SELECT count(*) FROM game_systems WHERE is_public AND category = 'fantasy'"))).scalar()
        for row in rows:
            usage = (await conn.execute(sa.text(
                "SELECT count(*) FROM game_rooms WHERE is_active AND game_system_id = :s"), {"s": row["id"]})).scalar()
            assert row["usage_count"] == usage
        past_end = (await conn.execute(*systems.catalog_query(category="fantasy", complexity=None, text=None,
                                                             page=99, limit=10))).mappings().all()
    assert len(rows) == 10 and rows[0]["total"] == expected_total
    assert len(past_end) == 1 and past_end[0]["id"] is None and past_end[0]["total"] == expected_total

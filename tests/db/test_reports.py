"""After a workload on real PostgreSQL the reports hold real rows; optimize vacuums what is dirty
and advises an index for what is scanned. Plus the admin routes: admins only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tableforge.api.app import create_app
from tableforge.api.routes import admin_db
from tableforge.db import reports
from tableforge.db.engine import Database
from tableforge.db.migrate import upgrade
from tableforge.services import users
from tests.db.conftest import pg_settings
from tests.support.private_postgres import PrivatePostgres


async def _flush_stats(conn: sa.ext.asyncio.AsyncConnection) -> None:
    # Backends report table statistics lazily (up to seconds later); make this one report now.
    await conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))
    await conn.commit()
    await conn.execute(sa.text("SELECT 1"))


async def _workload(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(sa.text(
            """INSERT INTO users (id, username, password_hash, created_at)
               SELECT gen_random_uuid(), 'w' || g, 'x', now() FROM generate_series(1, 20) g"""))
        await conn.execute(sa.text(
            """INSERT INTO game_rooms (id, name, gm_id, invite_code, is_active, version, created_at)
               SELECT gen_random_uuid(), 'R' || g, (SELECT id FROM users LIMIT 1), 'INV' || g, true, 0, now()
               FROM generate_series(1, 20) g"""))
        # 5,000 assets, looked up by name (no index): the seq-scanned table.
        await conn.execute(sa.text(
            """INSERT INTO game_assets (id, room_id, name, type, sha256, file_path, width, height, size, created_at)
               SELECT gen_random_uuid(), (SELECT id FROM game_rooms ORDER BY id OFFSET g % 20 LIMIT 1),
                      'asset-' || g, 'png', md5(g::text) || md5(g::text), 'x', 1, 1, 1, now()
               FROM generate_series(1, 5000) g"""))
        # Stored events, half of them deleted: the table with dead rows.
        await conn.execute(sa.text(
            """INSERT INTO room_events (room_id, version, body)
               SELECT r.id, g, '{}' FROM game_rooms r, generate_series(1, 200) g"""))
        await conn.execute(sa.text("DELETE FROM room_events WHERE version % 2 = 0"))
    async with db.read() as conn:
        for i in range(30):
            await conn.execute(sa.text("SELECT id FROM game_assets WHERE name = :n"), {"n": f"asset-{i * 7}"})
        await _flush_stats(conn)


@pytest.fixture(scope="module")
async def worked(pg_db: Database) -> Database:
    """The workload on the shared server (a database of this module's own)."""
    await _workload(pg_db)
    return pg_db


@pytest.fixture(scope="module")
async def worked_with_statements(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    """The workload on a private cluster that preloads pg_stat_statements: the report needs a server
    setting (shared_preload_libraries, only read at start-up) that the shared server may not have,
    and restarting the shared server for it would cut everyone else's connections."""
    workdir = tmp_path_factory.mktemp("pgss")
    pg = PrivatePostgres(workdir, settings={"shared_preload_libraries": "pg_stat_statements",
                                            "pg_stat_statements.track": "top"})
    try:
        pg.start()
        db = Database(pg_settings(pg.create_database("reports"), workdir))
        try:
            await upgrade(db)  # migration 0002 creates the extension (the role is a superuser here)
            await _workload(db)
            yield db
        finally:
            await db.dispose()
    finally:
        pg.close()


async def test_table_stats_show_the_workload(worked: Database) -> None:
    report = await reports.table_stats(worked)
    tables = {t["table"]: t for t in report["tables"]}
    assert tables["game_assets"]["live_rows"] == 5000 and tables["game_assets"]["seq_scan"] >= 30
    assert tables["room_events"]["dead_rows"] == 2000 and tables["room_events"]["dead_ratio"] == 0.5


async def test_slow_queries_come_from_pg_stat_statements(worked_with_statements: Database) -> None:
    report = await reports.slow_queries(worked_with_statements, limit=100)
    assert report["available"], report
    mine = [q for q in report["queries"] if "FROM game_assets WHERE name" in q["query"]]
    assert mine and mine[0]["calls"] >= 30 and mine[0]["mean_exec_time_ms"] > 0


async def test_optimize_vacuums_dirty_tables_and_advises_an_index(worked: Database) -> None:
    result = await reports.optimize(worked)
    actions = {a["table"]: a for a in result["actions"]}
    assert actions["room_events"]["action"] == "vacuum_analyze" and actions["room_events"]["status"] == "ok"
    assert actions["game_assets"]["action"] == "analyze" and actions["game_assets"]["status"] == "ok"
    advice = result["advice"]
    assert "game_assets" in {t["table"] for t in advice["seq_scan_heavy"]}
    assert advice["unindexed_foreign_keys"] == []  # every app foreign key has an index
    ranked = advice["candidates"]
    if ranked["available"]:  # HypoPG installed (CI: .ci/pg-setup)
        assert ranked["ranked"][0]["table"] == "game_assets" and ranked["ranked"][0]["columns"] == ["name"]
    after = {t["table"]: t for t in (await reports.table_stats(worked))["tables"]}
    assert after["room_events"]["last_vacuum"] is not None and after["room_events"]["dead_rows"] == 0


async def test_sqlite_reports_say_what_they_cannot(tmp_path: Path) -> None:
    from tableforge.config import Settings

    db = Database(Settings(data_dir=tmp_path))
    await upgrade(db)
    try:
        slow = await reports.slow_queries(db)
        assert slow["available"] is False and "SQLite" in slow["reason"]
        stats = await reports.table_stats(db)
        assert {"users", "board_tokens"} <= {t["table"] for t in stats["tables"]} and stats["not_available"]
        opt = await reports.optimize(db)
        assert opt["actions"][0]["status"] == "ok" and opt["advice"]["available"] is False
    finally:
        await db.dispose()


@pytest.fixture
async def client(own_pg_url: str, tmp_path: Path
                 ) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], dict[str, str]]]:
    app = create_app(pg_settings(own_pg_url, tmp_path, seed_catalog=False))
    if not any(getattr(r, "path", "").startswith("/api/admin/db") for r in app.router.routes):
        app.router.routes[0:0] = admin_db.router.routes  # ahead of the static mount at "/"
    async with app.router.lifespan_context(app):
        rt = app.state.runtime
        await users.create_user(rt, "dbadmin", "correct horse", is_admin=True)
        await users.create_user(rt, "dbplayer", "correct horse")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            tokens = []
            for name in ("dbadmin", "dbplayer"):
                r = await http.post("/api/auth/login", json={"username": name, "password": "correct horse"})
                assert r.status_code == 200, r.text
                tokens.append({"Authorization": f"Bearer {r.json()['token']}"})
            http.cookies.clear()
            yield http, tokens[0], tokens[1]


async def test_admin_db_routes_are_admin_only(client: tuple[httpx.AsyncClient, dict[str, str], dict[str, str]]
                                              ) -> None:
    http, admin, player = client
    routes = [("GET", "/api/admin/db/pool"), ("GET", "/api/admin/db/slow-queries"), ("GET", "/api/admin/db/tables"),
              ("POST", "/api/admin/db/optimize")]
    for method, path in routes:
        assert (await http.request(method, path)).status_code == 401
        denied = await http.request(method, path, headers=player)
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "not_admin"
        ok = await http.request(method, path, headers=admin)
        assert ok.status_code == 200, ok.text
    pool = (await http.get("/api/admin/db/pool", headers=admin)).json()
    assert pool["pools"][0]["max"] == 20 and pool["pools"][0]["min"] == 5
    tables = (await http.get("/api/admin/db/tables", headers=admin)).json()
    assert "users" in {t["table"] for t in tables["tables"]}

"""`tableforge backup` / `tableforge restore` as an operator runs them, against real servers: SQLite
(online backup while players write) and PostgreSQL (pg_dump, restored into an empty database), the
assets beside them, and the record of the last run in `GET /api/admin/backup` and `/metrics`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tableforge.config import Settings
from tableforge.services.backup import libpq
from tests.conftest import free_port
from tests.support.accounts import make_admin
from tests.support.client import Api, Player, png_bytes
from tests.support.metrics import sample
from tests.support.server import ServerProcess
from tests.support.services import require_postgres, temp_database


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tableforge", *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def backup(env: dict[str, str], output: Path, *extra: str) -> dict[str, Any]:
    code, out, err = await cli(env, "backup", "--output", str(output), *extra)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


async def table(api: Api, gm: Player, color: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A room with an uploaded map (its own bytes: `color`)."""
    room = await api.room(gm)
    up = await api.upload(gm, room["id"], png_bytes(24, 24, color))
    assert up.status_code == 201, up.text
    return room, up.json()


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(free_port(), {"TABLEFORGE_DATA_DIR": str(tmp_path / "data")}, name="sqlite")
    server.start()
    yield server
    server.stop()


async def test_sqlite_online_backup_while_playing_then_restore(sqlite_server: ServerProcess, tmp_path: Path) -> None:
    env = sqlite_server.env
    out = tmp_path / "backups"
    async with Api(sqlite_server.base_url) as api:
        admin = await make_admin(api, env)
        never = (await api.http.get("/api/admin/backup", headers=admin.headers)).json()
        assert never == {"last_success": None, "last_failure": None, "age_seconds": None}
        assert await sample(api.http, "tableforge_backup_last_success_timestamp_seconds") == 0
        gm = await api.register("gm")
        kept_room, kept_map = await table(api, gm, "blue")
        ws = await api.ws(gm)
        await ws.request("join", room_id=kept_room["id"])
        said = 0

        async def chatter() -> None:  # players keep writing while the backup runs
            nonlocal said
            while True:
                assert (await ws.request("chat.send", room_id=kept_room["id"], text=f"line {said}"))["type"] == "ack"
                said += 1

        writer = asyncio.ensure_future(chatter())
        try:
            first = await backup(env, out)
        finally:
            writer.cancel()
            await ws.close()
        assert said > 0
        path = Path(first["path"])
        assert first["backend"] == "sqlite" and path.parent == out and path.name.startswith("tableforge-backup-")
        assert first["assets"] == first["assets_copied"] == 1 and first["schema_revision"]
        copy = sqlite3.connect(path / "tableforge.db")
        try:
            hex_id = kept_room["id"].replace("-", "")  # SQLAlchemy keeps a UUID as 32 hex digits in SQLite
            assert copy.execute("SELECT name FROM game_rooms WHERE id = ?", (hex_id,)).fetchone() == ("Table",)
            assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        finally:
            copy.close()
        stored = path / "assets" / kept_map["sha256"][:2] / f"{kept_map['sha256']}.png"
        map_bytes = stored.read_bytes()
        assert map_bytes == (await api.http.get(kept_map["url"])).content

        # What an operator sees: the admin route and the metric, from the record in the data directory.
        seen = (await api.http.get("/api/admin/backup", headers=admin.headers)).json()
        assert seen["last_success"]["path"] == str(path) and seen["last_failure"] is None
        assert 0 <= seen["age_seconds"] < 3600
        assert await sample(api.http, "tableforge_backup_last_success_timestamp_seconds") == \
            first["finished_ts"]

        # The next backup links the unchanged asset instead of copying it; --keep 1 drops the first.
        await asyncio.sleep(1.1)  # backup directories are named to the second
        second = await backup(env, out, "--keep", "1")
        assert second["assets"] == 1 and second["assets_copied"] == 0 and second["removed"] == [path.name]
        linked = Path(second["path"]) / "assets" / stored.relative_to(path / "assets")
        assert linked.read_bytes() == map_bytes and linked.stat().st_nlink == 1  # its first link went with --keep
        assert sorted(p.name for p in out.iterdir()) == [Path(second["path"]).name]

        # After the backup: a room that the restore must take away, and the assets lost.
        lost_room, _ = await table(api, gm, "red")
    sqlite_server.stop()
    data = Path(env["TABLEFORGE_DATA_DIR"])
    for f in sorted((data / "assets").rglob("*.png")):
        f.unlink()
    code, _, err = await cli(env, "restore", second["path"])
    assert code == 2 and "--yes" in err  # nothing is replaced without the confirmation
    code, _, err = await cli(env, "restore", second["path"], "--yes")
    assert code == 0, err
    sqlite_server.start()
    async with Api(sqlite_server.base_url) as api:
        assert (await api.http.get(f"/api/rooms/{kept_room['id']}", headers=gm.headers)).status_code == 200
        assert (await api.http.get(f"/api/rooms/{lost_room['id']}", headers=gm.headers)).status_code == 404
        restored = await api.http.get(kept_map["url"])
        assert restored.status_code == 200 and restored.content == map_bytes


async def test_postgres_backup_restores_into_an_empty_database(tmp_path: Path) -> None:
    require_postgres()
    with temp_database() as source_url, temp_database() as empty_url:
        env = {"TABLEFORGE_DATA_DIR": str(tmp_path / "data"), "TABLEFORGE_DATABASE_URL": source_url}
        server = ServerProcess(free_port(), env, name="pg")
        server.start()
        try:
            async with Api(server.base_url) as api:
                gm = await api.register("gm")
                room, tile = await table(api, gm, "green")
                done = await backup(env, tmp_path / "backups")
                admin = await make_admin(api, env)
                seen = (await api.http.get("/api/admin/backup", headers=admin.headers)).json()
                assert seen["last_success"]["finished_ts"] == done["finished_ts"]
        finally:
            server.stop()
        assert done["backend"] == "postgresql" and done["database_bytes"] > 0 and done["assets"] == 1
        assert (Path(done["path"]) / "database.dump").read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format

        # Another machine: an empty database and an empty data directory, restored from the backup.
        fresh = {"TABLEFORGE_DATA_DIR": str(tmp_path / "elsewhere"), "TABLEFORGE_DATABASE_URL": empty_url}
        code, _, err = await cli(fresh, "restore", done["path"], "--yes")
        assert code == 0, err
        again = ServerProcess(free_port(), fresh, name="pg-restored")
        again.start()
        try:
            async with Api(again.base_url) as api:
                login = await api.http.post("/api/auth/login", json={"username": gm.user["username"],
                                                                     "password": "correct horse"})
                assert login.status_code == 200, login.text
                got = await api.http.get(f"/api/rooms/{room['id']}", headers=gm.headers)
                assert got.status_code == 200 and got.json()["room"]["name"] == "Table"
                image = await api.http.get(tile["url"])
                assert image.status_code == 200 and hashlib.sha256(image.content).hexdigest() == tile["sha256"]
        finally:
            again.stop()


async def test_a_failed_backup_is_recorded_and_keeps_the_last_success(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"TABLEFORGE_DATA_DIR": str(data)}
    code, _, err = await cli(env, "backup", "--output", str(tmp_path / "b"))
    assert code == 1 and "no database at" in err  # nothing ever ran here
    unreachable = {**env, "TABLEFORGE_DATABASE_URL": f"postgresql://tf:s3cret-pw@127.0.0.1:{free_port()}/none"}
    code, _, err = await cli(unreachable, "backup", "--output", str(tmp_path / "b"))
    assert code == 1 and "failed" in err and "s3cret-pw" not in err
    record = json.loads((data / "backup-status.json").read_text())
    assert record["last_success"] is None
    assert record["last_failure"]["backend"] == "postgresql" and "s3cret-pw" not in json.dumps(record)
    assert not list((tmp_path / "b").iterdir())  # no partial directory left behind

    server = ServerProcess(free_port(), env, name="after-failure")
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert await sample(http, "tableforge_backup_last_failure_timestamp_seconds") == \
                record["last_failure"]["finished_ts"]
            assert await sample(http, "tableforge_backup_last_success_timestamp_seconds") == 0
    finally:
        server.stop()


def test_the_password_never_reaches_a_command_line() -> None:
    settings = Settings(database_url="postgresql+asyncpg://tf:p%40ss@db.internal:5433/games?ssl=require")
    dsn, env = libpq(settings)
    assert dsn == "postgresql://tf@db.internal:5433/games"
    assert env["PGPASSWORD"] == "p@ss" and env["PGSSLMODE"] == "require"

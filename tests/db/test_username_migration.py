"""Migration 0003 on a database that already holds names differing only in case: it does not
fail; the oldest account keeps its name, later ones are renamed `<name>~<id prefix>`, and the
unique lower(username) index then refuses a new case-variant. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import IntegrityError

from tableforge.config import Settings
from tableforge.db.engine import Database
from tableforge.db.migrate import alembic_config, upgrade
from tests.support.services import require_postgres, temp_database

IDS = ["aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002",
       "cccccccc-0000-4000-8000-000000000003", "dddddddd-0000-4000-8000-000000000004"]


async def _check(db: Database) -> None:
    async with db.writer.begin() as conn:
        def to_0002(sync_conn: Any) -> None:
            cfg = alembic_config(db.url)
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "0002")

        await conn.run_sync(to_0002)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(IDS[0], "Bob", 0), (IDS[1], "bob", 1), (IDS[2], "BOB" + "x" * 29, 2), (IDS[3], "bob" + "X" * 29, 3)]
    async with db.writer.begin() as conn:
        for user_id, name, minutes in rows:
            await conn.execute(sa.text(
                "INSERT INTO users (id, username, password_hash, is_admin, created_at) "
                "VALUES (:id, :name, 'x', false, :at)"), {"id": user_id, "name": name,
                                                          "at": start + timedelta(minutes=minutes)})
    await upgrade(db)
    async with db.writer.begin() as conn:
        names = dict((str(r[0]), r[1]) for r in await conn.execute(sa.text("SELECT id, username FROM users")))
    assert names[IDS[0]] == "Bob", "the oldest keeps its name"
    assert names[IDS[1]] == "bob~bbbbbb"
    assert names[IDS[2]] == "BOB" + "x" * 29
    assert names[IDS[3]] == ("bob" + "X" * 29)[:25] + "~dddddd" and len(names[IDS[3]]) == 32
    with pytest.raises(IntegrityError):
        async with db.writer.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO users (id, username, password_hash, is_admin, created_at) "
                "VALUES ('eeeeeeee-0000-4000-8000-000000000005', 'bOB', 'x', false, :at)"), {"at": start})


async def test_sqlite(tmp_path: Path) -> None:
    db = Database(Settings(data_dir=tmp_path))  # type: ignore[call-arg]
    try:
        await _check(db)
    finally:
        await db.dispose()


async def test_postgres(tmp_path: Path) -> None:
    require_postgres()
    with temp_database() as url:
        db = Database(Settings(database_url=url, data_dir=tmp_path))  # type: ignore[call-arg]
        try:
            await _check(db)
        finally:
            await db.dispose()

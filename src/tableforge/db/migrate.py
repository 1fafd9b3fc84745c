"""Run Alembic migrations from inside the app (`tableforge migrate`, and embedded start-up)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from tableforge.db.engine import Database

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same for every instance of this app.
_ADVISORY_LOCK_ID = 0x7AB1EF06


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


async def upgrade(db: Database) -> None:
    """Upgrade to head. On PostgreSQL an advisory lock lets N instances start at once safely."""
    cfg = alembic_config(db.url)

    def run(sync_conn: Any) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "head")

    async with db.writer.begin() as conn:
        if db.is_postgres:
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_ID})
        await conn.run_sync(run)

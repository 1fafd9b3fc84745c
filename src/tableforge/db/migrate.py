"""Run Alembic migrations from inside the app (`tableforge migrate`, and embedded start-up)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tableforge.db.engine import Database

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same for every instance of this app.
_ADVISORY_LOCK_ID = 0x7AB1EF06
_REVISION = re.compile(r'^revision = "([^"]+)"', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision = (?:"([^"]+)"|None)', re.MULTILINE)


def alembic_config(url: str) -> Config:
    from alembic.config import Config  # Alembic (and Mako) only when a migration runs: ~3 MB of RSS

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


async def upgrade(db: Database) -> None:
    """Upgrade to head. On PostgreSQL an advisory lock lets N instances start at once safely."""

    def run(sync_conn: Any) -> None:
        from alembic import command

        cfg = alembic_config(db.url)
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "head")

    async with db.writer.begin() as conn:
        if db.is_postgres:
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_ID})
        # Every start-up comes here (auto-migrate): a database already at head costs one query,
        # not the import of Alembic.
        if await _current_revision(conn, db.is_postgres) == head_revision():
            return
        await conn.run_sync(run)


@cache
def head_revision() -> str:
    """The newest revision of `migrations/versions`, read from the files' `revision` lines (the same
    linear chain Alembic walks) so that a server at head never imports Alembic."""
    revisions: dict[str, str | None] = {}
    for path in (_MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text()
        rev, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if rev is not None and down is not None:
            revisions[rev.group(1)] = down.group(1)
    parents = {d for d in revisions.values() if d is not None}
    heads = [r for r in revisions if r not in parents]
    if len(heads) != 1:
        raise RuntimeError(f"migrations: expected one head revision, found {sorted(heads)}")
    return heads[0]


async def _current_revision(conn: Any, is_postgres: bool) -> str | None:
    """alembic_version's row, or None when the table is not there yet (asked first: on PostgreSQL a
    failed SELECT would abort the transaction holding the advisory lock)."""
    exists = (sa.text("SELECT to_regclass('alembic_version') IS NOT NULL") if is_postgres else
              sa.text("SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"))
    if not (await conn.execute(exists)).scalar():
        return None
    rows = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars().all()
    return rows[0] if len(rows) == 1 else None

"""Database-layer tests on real PostgreSQL. Each module gets its own fresh database (the same way
the `pg_url` fixture makes one), because these tests terminate backends, vacuum and load data,
which must not disturb the session-wide server that shares `pg_url`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tableforge.config import Settings
from tableforge.db.engine import Database
from tableforge.db.migrate import upgrade
from tests.support.services import require_postgres, temp_database


@pytest.fixture(scope="module")
def own_pg_url() -> Iterator[str]:
    require_postgres()
    with temp_database() as url:
        yield url


def pg_settings(url: str, data_dir: Path, **overrides: object) -> Settings:
    return Settings(database_url=url, data_dir=data_dir, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def pg_db(own_pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    db = Database(pg_settings(own_pg_url, tmp_path_factory.mktemp("pgdb")))
    await upgrade(db)
    yield db
    await db.dispose()

"""Seeding the catalog on SQLite and PostgreSQL: the official systems are inserted once, and a server
that upgrades brings the ones it stored earlier up to the current templates (cached copies too),
without touching anyone else's system or the official ones' counters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tableforge.config import Settings
from tableforge.db import migrate
from tableforge.db.schema import game_systems
from tableforge.services import catalog_seed, systems, users
from tableforge.services.runtime import Runtime
from tableforge.wiring.backends import build_runtime
from tests.support.services import require_postgres, temp_database

OLD_TEMPLATE = {"dice_presets": [{"label": "Small pool", "notation": "6d6"}],
                "token_defaults": {"size": 1, "grid": {"type": "square", "cell_meters": 1}, "show_hp_bar": False}}
NEON = "Neon Runners (d6 dice pool)"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    require_postgres()
    with temp_database() as url:  # its own database: the shared one's catalog serves other tests
        yield url


@pytest.fixture
async def rt(database_url: str | None, tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = build_runtime(Settings(data_dir=tmp_path, database_url=database_url, redis_url=None,
                                     seed_catalog=False, redis_namespace="", instance_id="test-seed"))
    await runtime.cache.start()
    await migrate.upgrade(runtime.db)
    yield runtime
    await runtime.close()


async def _official(rt: Runtime) -> dict[str, dict]:
    async with rt.db.read() as conn:
        rows = (await conn.execute(sa.select(game_systems).where(game_systems.c.is_official.is_(True))))
        return {r["name"]: dict(r) for r in rows.mappings()}


async def test_seed_inserts_once(rt: Runtime) -> None:
    assert await catalog_seed.seed(rt) == len(catalog_seed.OFFICIAL_SYSTEMS)
    assert await catalog_seed.seed(rt) == 0, "a second start changes nothing"
    stored = await _official(rt)
    assert {n: s["template"] for n, s in stored.items()} == {
        s["name"]: s["template"] for s in catalog_seed.OFFICIAL_SYSTEMS}


async def test_an_upgrade_refreshes_stored_official_templates_and_their_cache(rt: Runtime) -> None:
    await catalog_seed.seed(rt)
    neon = (await _official(rt))[NEON]
    owner = await users.create_user(rt, "maker", "correct horse")
    custom = await systems.create(rt, owner, {"name": NEON, "description": "mine", "category": "sci-fi",
                                              "complexity": "beginner", "is_public": True,
                                              "template": OLD_TEMPLATE})
    # What an older server stored, with some use since; then read once so that it is cached.
    async with rt.db.write() as conn:
        await conn.execute(sa.update(game_systems).where(game_systems.c.id == neon["id"])
                           .values(template=OLD_TEMPLATE, description="old words", download_count=7))
    await rt.cache.delete(systems.system_key(neon["id"]))
    assert (await systems.get(rt, neon["id"], None))["template"] == OLD_TEMPLATE

    assert await catalog_seed.seed(rt) == 1
    fresh = await systems.get(rt, neon["id"], None)
    current = next(s for s in catalog_seed.OFFICIAL_SYSTEMS if s["name"] == NEON)
    assert fresh["template"] == current["template"] and fresh["description"] == current["description"]
    assert {"label": "Small pool", "notation": "6d6>=5"} in fresh["template"]["dice_presets"]
    assert fresh["download_count"] == 7, "counters are the users', not the code's"
    assert (await systems.get(rt, custom["id"], owner))["template"] == OLD_TEMPLATE, "a user's system is theirs"
    assert await catalog_seed.seed(rt) == 0

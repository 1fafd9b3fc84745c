"""A server install stays lean: the process that serves (the `tableforge` entry point, the app and
its start-up) loads none of the load generator's packages (matplotlib, numpy, hdrhistogram, aiohttp),
nor rich/pygments, nor Pillow before an upload, nor Alembic unless a migration runs; and
`tableforge loadtest` without the `loadtest` extra says how to install it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

# What `tableforge serve` runs in the server process, minus uvicorn's socket: the CLI package (the
# console script's module), the app, and the app's start-up (lifespan). Then the loaded modules.
PROBE = """
import asyncio, json, sys
import tableforge.cli
from tableforge.api.app import create_app

async def main() -> None:
    app = create_app()
    async with app.router.lifespan_context(app):
        print(json.dumps(sorted(sys.modules)))

asyncio.run(main())
"""

NOT_IN_A_SERVER = ("matplotlib", "numpy", "hdrh", "aiohttp", "rich", "pygments", "alembic", "mako", "PIL")


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env={**os.environ, "TABLEFORGE_LOG_LEVEL": "WARNING", **env},
                          capture_output=True, text=True, timeout=120, check=False)


def _server_modules(env: dict[str, str], migrate_first: bool) -> set[str]:
    if migrate_first:
        migrated = _run(["-m", "tableforge", "migrate"], env)
        assert migrated.returncode == 0, migrated.stderr
    probe = _run(["-c", PROBE], env)
    assert probe.returncode == 0, probe.stderr[-3000:]
    modules = set(json.loads(probe.stdout.strip().splitlines()[-1]))
    assert {"tableforge.api.app", "tableforge.cli", "sqlalchemy", "fastapi"} <= modules  # a real list
    return {m.split(".")[0] for m in modules}


def test_embedded_server_loads_no_tool_packages(tmp_path: Path) -> None:
    loaded = _server_modules({"TABLEFORGE_DATA_DIR": str(tmp_path)}, migrate_first=True)
    assert [m for m in NOT_IN_A_SERVER if m in loaded] == []
    assert "redis" not in loaded, "embedded mode has no Redis: the wiring imports its client only for a redis URL"


def test_scale_out_server_loads_no_tool_packages(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    env = {"TABLEFORGE_DATA_DIR": str(tmp_path), "TABLEFORGE_DATABASE_URL": pg_url, "TABLEFORGE_REDIS_URL": redis_url,
           "TABLEFORGE_REDIS_NAMESPACE": f"lean{uuid.uuid4().hex[:8]}"}
    loaded = _server_modules(env, migrate_first=True)
    assert [m for m in NOT_IN_A_SERVER if m in loaded] == []
    assert "redis" in loaded  # the probe sees the backends it was configured with


def test_a_first_start_migrates_with_alembic(tmp_path: Path) -> None:
    """The server's own migration (a fresh database) does load Alembic: the probe sees what loads."""
    loaded = _server_modules({"TABLEFORGE_DATA_DIR": str(tmp_path)}, migrate_first=False)
    assert "alembic" in loaded


@pytest.mark.parametrize("command", [["loadtest", "--url", "http://127.0.0.1:1"], ["cluster"]])
def test_tools_without_the_loadtest_extra_say_how_to_install_it(command: list[str], tmp_path: Path) -> None:
    # the extra's packages made unimportable, as in an install without `tableforge[loadtest]`
    script = ("import sys\nfor name in ('aiohttp', 'hdrh'):\n    sys.modules[name] = None\n"
              f"from tableforge.cli import app\napp({command!r})\n")
    r = _run(["-c", script], {"TABLEFORGE_DATA_DIR": str(tmp_path)})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "pip install 'tableforge[loadtest]'" in lines[0] and "aiohttp, hdrhistogram" in lines[0]


def test_embedded_server_loads_no_postgres_driver(tmp_path: Path) -> None:
    """SQLite: the wiring imports the PostgreSQL event log, and with it asyncpg, only for its URL."""
    loaded = _server_modules({"TABLEFORGE_DATA_DIR": str(tmp_path)}, migrate_first=True)
    assert "asyncpg" not in loaded

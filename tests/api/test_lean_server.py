"""A server install stays lean: the process that serves (the `tableforge` entry point, the app and
its start-up) loads none of the load generator's packages (matplotlib, numpy, hdrhistogram, aiohttp),
nor rich/pygments, nor Pillow before an upload, nor Alembic unless a migration runs, nor what only an
option or an admin's request needs (the CDN purge hook's httpx, the database reports, psutil in
embedded mode); and `tableforge loadtest` without the `loadtest` extra says how
to install it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port

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
# Loaded when asked for: the purge hook's client with a CDN purge URL, the reports by an admin's request.
NOT_AT_START_UP = ("httpx", "tableforge.db.reports")
# Embedded mode: psutil comes with the first admin stats request (in scale-out the instance registry
# reports memory with it).
NOT_IN_EMBEDDED = ("psutil",)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env={**os.environ, "TABLEFORGE_LOG_LEVEL": "WARNING", **env},
                          capture_output=True, text=True, timeout=120, check=False)


def _all_server_modules(env: dict[str, str], migrate_first: bool, probe: str = PROBE) -> set[str]:
    if migrate_first:
        migrated = _run(["-m", "tableforge", "migrate"], env)
        assert migrated.returncode == 0, migrated.stderr
    ran = _run(["-c", probe], env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    modules = set(json.loads(ran.stdout.strip().splitlines()[-1]))
    assert {"tableforge.api.app", "tableforge.cli", "sqlalchemy", "fastapi"} <= modules  # a real list
    return modules


def _server_modules(env: dict[str, str], migrate_first: bool) -> set[str]:
    return {m.split(".")[0] for m in _all_server_modules(env, migrate_first)}


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Which of `names` (packages or modules) are loaded, counting a package's submodules."""
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def test_embedded_server_loads_no_tool_packages(tmp_path: Path) -> None:
    modules = _all_server_modules({"TABLEFORGE_DATA_DIR": str(tmp_path)}, migrate_first=True)
    loaded = {m.split(".")[0] for m in modules}
    assert [m for m in NOT_IN_A_SERVER if m in loaded] == []
    assert "redis" not in loaded, "embedded mode has no Redis: the wiring imports its client only for a redis URL"
    # each costs RSS in every idle instance (docs/benchmarks.md, "an idle instance's memory")
    assert _loaded(modules, NOT_AT_START_UP + NOT_IN_EMBEDDED) == []
    assert "tableforge.cache.purge" in modules  # a real list: the module that would import httpx is there


def test_scale_out_server_loads_no_tool_packages(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    env = {"TABLEFORGE_DATA_DIR": str(tmp_path), "TABLEFORGE_DATABASE_URL": pg_url, "TABLEFORGE_REDIS_URL": redis_url,
           "TABLEFORGE_REDIS_NAMESPACE": f"lean{uuid.uuid4().hex[:8]}"}
    modules = _all_server_modules(env, migrate_first=True)
    loaded = {m.split(".")[0] for m in modules}
    assert [m for m in NOT_IN_A_SERVER if m in loaded] == []
    assert "redis" in loaded  # the probe sees the backends it was configured with
    assert _loaded(modules, NOT_AT_START_UP) == []
    assert _loaded(modules, NOT_IN_EMBEDDED) == list(NOT_IN_EMBEDDED)  # the registry reports memory with psutil


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


# A server with a CDN purge URL (a small HTTP server in the probe stands for the edge): the first
# purge loads httpx, still without rich, and the edge receives it.
PURGE_PROBE = """
import asyncio, json, os, sys
import tableforge.cli
from tableforge.api.app import create_app

async def main() -> None:
    received = []

    async def edge(reader, writer):
        head = (await reader.readuntil(b"\\r\\n\\r\\n")).decode()
        received.append([head.split(" ", 1)[0]] + [line.split(": ", 1)[1] for line in head.split("\\r\\n")
                                                  if line.lower().startswith("xkey: ")])
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(edge, "127.0.0.1", int(os.environ["EDGE_PORT"]))
    app = create_app()
    async with server, app.router.lifespan_context(app):
        before = "httpx" in sys.modules
        confirmed = await app.state.runtime.cache.edge.purge("catalog", "system-1")
        print(json.dumps({"before": before, "confirmed": confirmed, "received": received}))
        print(json.dumps(sorted(sys.modules)))

asyncio.run(main())
"""


def test_a_purge_url_loads_httpx_when_purging_and_still_no_rich(tmp_path: Path) -> None:
    port = free_port()
    env = {"TABLEFORGE_DATA_DIR": str(tmp_path), "TABLEFORGE_CDN_PURGE_URL": f"http://127.0.0.1:{port}/",
           "EDGE_PORT": str(port)}
    migrated = _run(["-m", "tableforge", "migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    ran = _run(["-c", PURGE_PROBE], env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    outcome_line, modules_line = ran.stdout.strip().splitlines()[-2:]
    assert json.loads(outcome_line) == {"before": False, "confirmed": True, "received": [["PURGE", "catalog system-1"]]}
    modules = set(json.loads(modules_line))
    assert "httpx" in modules and _loaded(modules, ("rich", "pygments")) == []


# The embedded admin's instance list: the process's memory, read by psutil loaded on that request.
STATS_PROBE = """
import asyncio, json, sys
import httpx
import tableforge.cli
from tableforge.api.app import create_app
from tableforge.services import users

def vm_rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

async def main() -> None:
    app = create_app()
    async with app.router.lifespan_context(app):
        await users.create_user(app.state.runtime, "statsadmin", "correct horse", is_admin=True)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            r = await http.post("/api/auth/login", json={"username": "statsadmin", "password": "correct horse"})
            headers = {"Authorization": f"Bearer {r.json()['token']}"}
            before = "psutil" in sys.modules
            listed = (await http.get("/api/admin/instances", headers=headers)).json()["instances"]
            print(json.dumps({"before": before, "after": "psutil" in sys.modules, "rss": vm_rss(),
                              "instances": listed}))

asyncio.run(main())
"""


def test_embedded_admin_sees_the_instance_memory(tmp_path: Path) -> None:
    env = {"TABLEFORGE_DATA_DIR": str(tmp_path)}
    migrated = _run(["-m", "tableforge", "migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    ran = _run(["-c", STATS_PROBE], env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    out = json.loads(ran.stdout.strip().splitlines()[-1])
    assert (out["before"], out["after"]) == (False, True)
    (instance,) = out["instances"]
    # psutil's figure is the kernel's VmRSS, read a moment apart in the same process
    assert abs(instance["memory_rss"] - out["rss"]) < out["rss"] * 0.1, (instance["memory_rss"], out["rss"])

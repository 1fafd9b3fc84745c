"""What an operator sees: health, readiness, metrics, logs, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.client import Api
from tests.support.metrics import sample
from tests.support.server import ServerProcess
from tests.support.waiting import eventually


async def test_health_ready_metrics(api: Api, server: ServerProcess) -> None:
    assert (await api.http.get("/health")).json() == {"status": "ok"}
    ready = await api.http.get("/ready")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"]["status"] == "ok" and checks["database"]["backend"] in ("sqlite", "postgresql")
    assert checks["database"]["latency_ms"] > 0 and checks["broker"]["status"] == "ok"  # a real round trip
    assert checks["rooms"] == {"status": "ok", "stalled_rooms": 0, "behind_rooms": 0}

    http = api.http
    registered = await sample(http, "tableforge_http_request_seconds_count", route="/api/auth/register", status="201")
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    room_reads = await sample(http, "tableforge_http_request_seconds_count", method="GET",
                              route="/api/rooms/{room_id}", status="200")
    assert (await http.get(f"/api/rooms/{room['id']}", headers=gm.headers)).status_code == 200
    a, b = await api.ws(gm), await api.ws(alice)
    await a.request("join", room_id=room["id"])
    await b.request("join", room_id=room["id"])
    sockets = await sample(http, "tableforge_ws_connections")
    chats_in = await sample(http, "tableforge_ws_messages_in_total", type="chat.send")
    delivered = await sample(http, "tableforge_delivery_seconds_count")
    await a.request("chat.send", room_id=room["id"], text="metrics please")
    await b.next_event("chat.message")
    text = (await http.get("/metrics")).text
    assert room["id"] not in text, "no ids in metric labels"
    # requests by route template, counted
    assert await sample(http, "tableforge_http_request_seconds_count", route="/api/auth/register",
                        status="201") == registered + 2
    assert await sample(http, "tableforge_http_request_seconds_count", method="GET", route="/api/rooms/{room_id}",
                        status="200") == room_reads + 1
    # the two sockets are counted while open (others may still be closing from earlier tests)
    assert sockets >= 2
    assert await sample(http, "tableforge_ws_messages_in_total", type="chat.send") == chats_in + 1
    # the chat event was fanned out once on this instance: one delivery observed, in a bucket
    assert await sample(http, "tableforge_delivery_seconds_count") >= delivered + 1
    assert await sample(http, "tableforge_delivery_seconds_bucket", le="+Inf") == \
        await sample(http, "tableforge_delivery_seconds_count")
    # what stalls every socket at once: the event loop's lag (sampled ten times a second) and GC pauses
    assert await sample(http, "tableforge_event_loop_lag_seconds_count") > 0
    assert await sample(http, "tableforge_gc_pause_seconds_count", generation="2") >= 1  # start-up's collect()
    assert await sample(http, "tableforge_db_pool_wait_seconds_count") > 0
    await a.close()
    await b.close()
    await eventually(lambda: _fewer_sockets(http, sockets - 2), what="both sockets no longer counted")


async def _fewer_sockets(http: httpx.AsyncClient, at_most: float) -> bool:
    return await sample(http, "tableforge_ws_connections") <= at_most


async def test_logs_are_json_with_the_instance_id(api: Api, server: ServerProcess) -> None:
    await api.http.get("/api/rooms/00000000-0000-0000-0000-000000000000")  # any request; startup already logged
    # The whole file: server.log() is only its tail, and earlier tests (hundreds of sockets) push "started" out.
    text = server.log_path.read_text(errors="replace")
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(entry.get("event") == "started" and entry.get("instance") for entry in lines)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tableforge", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60, input="")


def test_cli_migrate_and_users_create(tmp_path: Path, pg_url: str) -> None:
    for env in ({"TABLEFORGE_DATA_DIR": str(tmp_path)}, {"TABLEFORGE_DATABASE_URL": pg_url}):
        migrated = _cli("migrate", env=env)
        assert migrated.returncode == 0, migrated.stderr
        made = _cli("users", "create", "opsadmin", "--admin", "--password", "admin-password", env=env)
        assert made.returncode == 0 and "as admin" in made.stderr + made.stdout, made.stderr
        again = _cli("users", "create", "opsadmin", "--password", "admin-password", env=env)
        assert again.returncode == 1 and "taken" in again.stderr + again.stdout
        short = _cli("users", "create", "x", "--password", "p", env=env)
        assert short.returncode == 2


def test_admin_can_log_in_after_cli(tmp_path: Path) -> None:
    import httpx

    from tests.conftest import free_port

    env = {"TABLEFORGE_DATA_DIR": str(tmp_path)}
    assert _cli("users", "create", "boss", "--admin", "--password", "boss-password", env=env).returncode == 0
    srv = ServerProcess(free_port(), env)
    srv.start()
    try:
        r = httpx.post(f"{srv.base_url}/api/auth/login", json={"username": "boss", "password": "boss-password"})
        assert r.status_code == 200 and r.json()["user"]["is_admin"] is True
        page = httpx.get(f"{srv.base_url}/")
        assert page.status_code == 200 and "TableForge" in page.text
    finally:
        srv.stop()


def test_bad_configuration_is_a_clear_message(tmp_path: Path) -> None:
    bad = _cli("serve", "--port", "1", env={"TABLEFORGE_DATA_DIR": str(tmp_path), "TABLEFORGE_DB_POOL_MIN": "50",
                                             "TABLEFORGE_DB_POOL_MAX": "5"})
    assert bad.returncode == 2 and "TABLEFORGE_" in bad.stderr and "Traceback" not in bad.stderr
    workers = _cli("serve", "--workers", "2", env={"TABLEFORGE_DATA_DIR": str(tmp_path)})
    assert workers.returncode == 2 and "scale-out" in workers.stderr

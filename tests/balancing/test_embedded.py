"""On one embedded-mode server (SQLite, then PostgreSQL): the `?room=` hint is accepted and grants
nothing; an administrator can drain the server (and resume it); the polite 1012 answers the message
being handled before it closes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

import httpx
import pytest
import websockets

from tests.balancing.support import scrape
from tests.support.accounts import make_admin
from tests.support.client import Api, Ws
from tests.support.server import ServerProcess
from tests.support.waiting import eventually


def _count(metrics: str, result: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f'tableforge_ws_room_hints_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


async def test_the_room_hint_is_only_a_hint(api: Api, server: ServerProcess) -> None:
    gm, outsider = await api.register("gm"), await api.register("out")
    room = await api.room(gm)
    before = await scrape(server.base_url)
    # the hint naming a room the user is not in: accepted, and joining it is still refused
    ws = await Ws.connect(f"{api.ws_url}?room={room['id']}", outsider.token)
    refused = await ws.request("join", room_id=room["id"])
    assert refused["type"] == "error" and refused["code"] == "not_member", refused
    await ws.close()
    # a malformed hint is ignored: the socket works
    ws = await Ws.connect(f"{api.ws_url}?room=not-a-room%00", gm.token)
    joined = await ws.request("join", room_id=room["id"])
    assert joined["type"] == "ack" and joined["snapshot"]["room"]["id"] == room["id"]
    await ws.close()
    after = await scrape(server.base_url)
    assert _count(after, "given") == _count(before, "given") + 1
    assert _count(after, "malformed") == _count(before, "malformed") + 1


async def test_an_admin_drains_the_embedded_server_and_resumes_it(api: Api, server: ServerProcess) -> None:
    admin = await make_admin(api, server.env)
    gm = await api.register("gm")
    room = await api.room(gm)
    ws = await Ws.connect(api.ws_url, gm.token)
    assert (await ws.request("join", room_id=room["id"]))["type"] == "ack"
    instances = (await api.http.get("/api/admin/instances", headers=admin.headers)).json()["instances"]
    [me] = [i["instance_id"] for i in instances]
    try:
        r = await api.http.post(f"/api/admin/instances/{me}/drain", headers=admin.headers,
                                json={"window_seconds": 0, "notice_seconds": 0.5})
        assert r.status_code == 202, r.text

        async def draining() -> bool:
            r = await api.http.get("/ready")
            return r.status_code == 503 and r.json()["checks"]["drain"]["state"] in ("draining", "drained")

        await eventually(draining, 10, "/ready 503 draining")
        # the open socket keeps working during the notice; then it is closed with 1012
        assert await ws.closed_with(15) == 1012
        assert ws.sock.close_reason == "server draining"
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(api.ws_url, additional_headers=gm.headers)
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "1"
        assert json.loads(refused.value.response.body)["error"]["code"] == "instance_draining"
        assert (await api.http.get("/health")).status_code == 200  # HTTP is still served
        ready = (await api.http.get("/ready")).json()
        assert ready["status"] == "draining" and ready["checks"]["drain"]["cause"] == "admin"
    finally:
        r = await api.http.delete(f"/api/admin/instances/{me}/drain", headers=admin.headers)
        assert r.status_code == 202 and r.json() == {"instance_id": me, "draining": False}

    async def ready() -> bool:
        return (await api.http.get("/ready")).status_code == 200

    await eventually(ready, 10, "/ready 200 after the resume")
    again = await Ws.connect(api.ws_url, gm.token)
    assert (await again.request("join", room_id=room["id"]))["type"] == "ack"
    await again.close()
    unknown = await api.http.post(f"/api/admin/instances/{uuid.uuid4().hex}/drain", headers=admin.headers)
    assert unknown.status_code == 404
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        assert (await anonymous.delete(f"/api/admin/instances/{me}/drain")).status_code == 401


async def _cli(*args: str, token: str | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "TABLEFORGE_ADMIN_TOKEN": token or ""}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tableforge", "admin", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_admin_cli_drains_resumes_and_rebalances(api: Api, server: ServerProcess) -> None:
    admin = await make_admin(api, server.env)
    url = ["--url", server.base_url]
    code, out, err = await _cli("instances", *url, token=admin.token)
    assert code == 0, err
    [line] = out.splitlines()
    instance_id = line.split("\t")[0]
    assert "serving" in line and "1 instance(s)" in err
    try:
        code, _, err = await _cli("drain", instance_id, "--window", "0", "--notice", "0", *url, token=admin.token)
        assert code == 0 and f"{instance_id}: draining (notice 0 s, window 0 s)" in err, err

        async def drained() -> bool:
            return (await api.http.get("/ready")).status_code == 503

        await eventually(drained, 10, "the drain to take effect")
        async def listed_drained() -> bool:
            code, out, _ = await _cli("instances", *url, token=admin.token)
            return code == 0 and out.split("\t")[-1].strip() == "drained"

        await eventually(listed_drained, 60, "`tableforge admin instances` to list it drained", poll=0.5)
    finally:
        code, _, err = await _cli("resume", instance_id, *url, token=admin.token)
        assert code == 0 and f"{instance_id}: serving" in err, err
    code, out, err = await _cli("rebalance", "--min-sockets", "1", *url, token=admin.token)
    assert code == 0 and "nothing to shed" in err and instance_id in out, err
    # mistakes are explained, with an exit code and no traceback
    code, _, err = await _cli("rebalance", *url, token=None)
    assert code == 2 and "TABLEFORGE_ADMIN_TOKEN" in err
    code, _, err = await _cli("drain", "no-such-instance", *url, token=admin.token)
    assert code == 1 and "404 instance_not_found" in err
    code, _, err = await _cli("instances", *url, token="not-a-token")
    assert code == 1 and "401" in err and "Traceback" not in err
    code, _, err = await _cli("instances", "--url", "ftp://x", token=admin.token)
    assert code == 2 and "is not an http(s) URL" in err

"""The HTTP edge tier against a real Varnish (Debian package + vmod_xkey) on loopback.

varnishd -F fronts a real `tableforge serve`; the server's purge hook points at Varnish. A
repeated catalog read is a Varnish hit; after a write through the origin the next read through
Varnish is fresh, because the write purged the surrogate keys before it answered.
With CI=true a missing varnishd fails (run .ci/varnish-deps); otherwise these tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.support.client import Api
from tests.support.server import ServerProcess
from tests.support.waiting import poll_until

VCL = Path(__file__).with_name("tableforge.vcl")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _require_varnish() -> str:
    varnishd = shutil.which("varnishd") or ("/usr/sbin/varnishd" if Path("/usr/sbin/varnishd").exists() else None)
    if varnishd is None or not list(Path("/usr/lib").glob("*/varnish/vmods/libvmod_xkey.so")):
        message = "varnishd with vmod_xkey is not installed (run .ci/varnish-deps)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return varnishd


class Edge:
    def __init__(self, origin: ServerProcess, varnish_port: int) -> None:
        self.origin = origin
        self.url = f"http://127.0.0.1:{varnish_port}"


@pytest.fixture(scope="module", params=["PURGE", "BAN"])
def edge(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    varnishd = _require_varnish()
    work = tmp_path_factory.mktemp(f"edge-{request.param.lower()}")
    server_port, varnish_port = free_port(), free_port()
    origin = ServerProcess(server_port, {
        "TABLEFORGE_DATA_DIR": str(work / "data"),
        "TABLEFORGE_CDN_PURGE_URL": f"http://127.0.0.1:{varnish_port}/",
        "TABLEFORGE_CDN_PURGE_METHOD": request.param,
        "TABLEFORGE_CDN_PURGE_REPEAT": "0",
    }, name=f"origin-{request.param}")
    origin.start()
    vcl = work / "tableforge.vcl"
    vcl.write_text(VCL.read_text().replace("@BACKEND_PORT@", str(server_port)))
    log = (work / "varnishd.log").open("wb")
    # -j none: run as the test's user (no privilege separation needed on loopback), -F: foreground.
    proc = subprocess.Popen([varnishd, "-F", "-j", "none", "-a", f"127.0.0.1:{varnish_port}", "-f", str(vcl),
                             "-n", str(work / "varnish"), "-s", "malloc,32m"], stdout=log, stderr=subprocess.STDOUT)
    try:
        def answering() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"varnishd exited: {(work / 'varnishd.log').read_text()[-2000:]}")
            try:
                return httpx.get(f"http://127.0.0.1:{varnish_port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            poll_until(answering, 30, "varnishd to answer")
        except AssertionError:
            pytest.fail(f"varnishd did not answer: {(work / 'varnishd.log').read_text()[-2000:]}")
        yield Edge(origin, varnish_port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        origin.stop()


async def test_repeated_catalog_read_is_a_varnish_hit_and_fresh_after_a_write(edge: Edge) -> None:
    marker = f"edge{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=edge.url, timeout=10) as cdn, Api(edge.origin.base_url) as origin:
        params = {"search": marker}
        first = await cdn.get("/api/systems", params=params)
        assert first.status_code == 200 and first.json()["total"] == 0
        assert first.headers["x-cache"] == "MISS"
        assert first.headers["xkey"] == "catalog catalog-search" == first.headers["surrogate-key"]
        second = await cdn.get("/api/systems", params=params)
        assert second.headers["x-cache"] == "HIT", second.headers
        assert len(second.headers["x-varnish"].split()) == 2  # this request's id and the cached object's
        assert "age" in second.headers
        assert second.json() == first.json()

        owner = await origin.register("edge")
        made = await origin.http.post("/api/systems", headers=owner.headers, json={
            "name": f"{marker} Saga", "description": "d", "category": marker, "complexity": "beginner",
            "is_public": True, "template": {}})
        assert made.status_code == 201, made.text

        third = await cdn.get("/api/systems", params=params)  # at once: the write purged `catalog`
        assert third.headers["x-cache"] == "MISS"
        assert [s["name"] for s in third.json()["systems"]] == [f"{marker} Saga"]
        fourth = await cdn.get("/api/systems", params=params)
        assert fourth.headers["x-cache"] == "HIT" and fourth.json() == third.json()

        # A filtered page is purged by its filter combination's key when a system on it changes.
        category = {"category": marker}
        assert (await cdn.get("/api/systems", params=category)).headers["x-cache"] == "MISS"
        assert (await cdn.get("/api/systems", params=category)).headers["x-cache"] == "HIT"
        rated = await origin.http.post(f"/api/systems/{made.json()['id']}/rating", headers=owner.headers,
                                       json={"rating": 4})
        assert rated.status_code == 200
        after = await cdn.get("/api/systems", params=category)
        assert after.headers["x-cache"] == "MISS" and after.json()["systems"][0]["rating"] == 4

        # One system's page: cached, and purged by its own key when it changes.
        path = f"/api/systems/{made.json()['id']}"
        assert (await cdn.get(path)).headers["x-cache"] == "MISS"
        hit = await cdn.get(path)
        assert hit.headers["x-cache"] == "HIT" and hit.headers["xkey"] == f"system-{made.json()['id']}"
        patched = await origin.http.patch(path, headers=owner.headers, json={"description": "changed"})
        assert patched.status_code == 200
        fresh = await cdn.get(path)
        assert fresh.headers["x-cache"] == "MISS" and fresh.json()["description"] == "changed"


async def test_member_data_is_never_stored_by_the_edge(edge: Edge) -> None:
    async with httpx.AsyncClient(base_url=edge.url, timeout=10) as cdn, Api(edge.origin.base_url) as origin:
        gm = await origin.register("gm")
        room = await origin.room(gm)
        for _ in range(2):
            r = await cdn.get(f"/api/rooms/{room['id']}", headers=gm.headers)
            assert r.status_code == 200 and r.headers["x-cache"] == "MISS"
            assert r.headers["cache-control"] == "private, no-cache"

"""`tableforge loadtest` against a real 2-instance cluster, `tableforge cluster` start/stop, bad input."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web
from typer.testing import CliRunner

from tableforge.cli import app
from tableforge.loadtest import recorder
from tableforge.loadtest.hist import parse_prometheus, series_quantile
from tableforge.loadtest.report import TARGETS
from tableforge.loadtest.scenario import LoadConfig, LoadTest, new_session
from tests.support.cluster import Cluster
from tests.support.waiting import poll_until


def test_short_run_on_two_instances_loses_nothing(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    cluster = Cluster(2, pg_url, redis_url, tmp_path / "data").start()
    out = tmp_path / "run.json"
    report = tmp_path / "run.html"
    try:
        r = subprocess.run(
            [sys.executable, "-m", "tableforge", "loadtest",
             *(a for s in cluster.servers for a in ("--url", s.base_url)),
             "--users", "12", "--rooms", "3", "--duration", "8", "--ramp-up", "2", "--think-time", "1",
             "--seed", "3", "--json", str(out), "--report", str(report)],
            capture_output=True, text=True, timeout=120, check=False)
    finally:
        cluster.stop()
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    res = json.loads(out.read_text())
    assert res["integrity"]["lost"] == 0
    assert res["integrity"]["duplicates"] == 0
    assert res["integrity"]["versions_checked"] > 0
    assert {t["key"] for t in res["targets"]} == {key for _, key, *_ in TARGETS}
    thresholds = {key: (threshold, op) for _, key, threshold, op, _ in TARGETS}
    for t in res["targets"]:
        assert t["measured"] is not None, t
        # the verdict the user reads is the measurement compared with the published target
        threshold, op = thresholds[t["key"]]
        assert (t["threshold"], t["op"]) == (threshold, op)
        assert t["pass"] is (t["measured"] < threshold if op == "<" else t["measured"] > threshold), t
    assert res["all_targets_pass"] is all(t["pass"] for t in res["targets"])
    cache_p95 = next(t for t in res["targets"] if t["key"] == "cache_p95_ms")
    assert cache_p95["source"].startswith("tableforge_cache_lookup_seconds"), cache_p95
    assert res["actions"].get("drag", 0) > 0 and res["delivery"]["token.moving"]["n"] > 0
    # the targets read the steady phase; what happened while players arrived is reported apart
    assert res["config"]["duration"] == 8 and res["config"]["ramp_up"] == 2
    assert res["steady_seconds"] > 0 and res["ramp_up"]["ack"]["n"] > 0
    instances = res["server"]["instances"]
    assert len(instances) == 2 and all(i["pid"] for i in instances)
    assert all(i["samples"] > 0 and i["rss_mb_max"] > 0 for i in instances), instances
    # the generator worked for ten seconds: its own CPU was sampled and was not idle
    assert res["client"]["cpu_pct_max"] > 0 and res["client"]["cpu_pct_max"] >= res["client"]["cpu_pct_median"]
    assert report.read_text().count("data:image/png;base64,") >= 2
    assert "targets" in r.stdout


def _consecutive_free_ports(n: int) -> int:
    # Below Linux's ephemeral range (32768-60999): a long test session's client sockets hold many
    # ports up there, so two consecutive free ones are rare.
    for _ in range(200):
        base = random.randrange(20000, 32000 - n)
        ok = True
        for port in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
        if ok:
            return base
    raise RuntimeError("no free consecutive ports")


def test_cluster_starts_and_stops_on_sigterm(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    base = _consecutive_free_ports(2)
    env = {**os.environ, "TABLEFORGE_DATABASE_URL": pg_url, "TABLEFORGE_REDIS_URL": redis_url,
           "TABLEFORGE_REDIS_NAMESPACE": f"c{uuid.uuid4().hex[:8]}", "TABLEFORGE_DATA_DIR": str(tmp_path),
           "TABLEFORGE_INSTANCE_HEARTBEAT_SECONDS": "1", "TABLEFORGE_INSTANCE_TTL_SECONDS": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "tableforge", "cluster", "--instances", "2", "--base-port",
                             str(base)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    urls = [f"http://127.0.0.1:{base + i}" for i in range(2)]
    try:
        up: set[str] = set()

        def both_up() -> bool:
            assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
            for u in urls:
                try:
                    if httpx.get(f"{u}/health", timeout=1).status_code == 200:
                        up.add(u)
                except httpx.HTTPError:
                    pass
            return len(up) == 2

        poll_until(both_up, 60, "both instances healthy", poll=0.2)
        # each instance serves its own metrics
        text = httpx.get(f"{urls[1]}/metrics", timeout=5).text
        assert list(parse_prometheus(text)["value"]["tableforge_ws_connections"].values()) == [0.0]  # none yet
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=40)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output[-3000:]
    assert "stopped" in output
    for u in urls:
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{u}/health", timeout=1)


runner = CliRunner()


@pytest.mark.parametrize(("args", "message"), [
    (["loadtest", "--url", "http://127.0.0.1:1", "--users", "2", "--rooms", "1", "--duration", "2"], "unreachable"),
    (["loadtest", "--url", "not-a-url", "--users", "2", "--rooms", "1"], "not an http(s) URL"),
    (["loadtest", "--url", "http://[::1", "--users", "2", "--rooms", "1"], "not an http(s) URL"),
    (["loadtest", "--url", "http://127.0.0.1:99999", "--users", "2", "--rooms", "1"], "not an http(s) URL"),
    (["loadtest", "--url", "http://127.0.0.1:1", "--users", "2", "--rooms", "5"], "cannot exceed"),
    (["loadtest", "--url", "http://127.0.0.1:1", "--users", "0"], "--users"),
    (["loadtest", "--users", "2"], "--url"),
])
def test_bad_arguments_get_a_clear_message(args: list[str], message: str) -> None:
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output


async def test_http_reads_whole_answers_rebuilds_uploads_and_counts_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    uploads: list[tuple[str, str, bytes]] = []

    async def upload(request: web.Request) -> web.Response:
        part = (await request.post())["file"]
        assert isinstance(part, web.FileField)
        uploads.append((part.filename, part.content_type, part.file.read()))
        return web.Response(status=503) if len(uploads) == 1 else web.json_response({"id": "a1"}, status=201)

    async def asset(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"abc"':
            return web.Response(status=304, headers={"ETag": '"abc"'})
        return web.Response(body=b"png-bytes", headers={"ETag": '"abc"'})

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(2)  # the scenario: a server slower than the client's timeout
        return web.Response(text="late")

    server = web.Application()
    server.router.add_post("/up", upload)
    server.router.add_get("/asset", asset)
    server.router.add_get("/slow", slow)
    web_runner = web.AppRunner(server)
    await web_runner.setup()
    site = web.TCPSite(web_runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{web_runner.addresses[0][1]}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    lt = LoadTest(LoadConfig(urls=[base], users=1, rooms=1, duration=1, ramp_up=0))
    try:
        async with new_session(1) as http:
            # multipart upload: a 503 is retried in setup with a fresh form carrying the same file
            r = await lt.http(http, "POST", f"{base}/up", "/up", setup=True,
                              files={"file": ("map.png", b"\x89PNG-data", "image/png")})
            assert r is not None and r.status == 201 and r.json() == {"id": "a1"}
            assert uploads == [("map.png", "image/png", b"\x89PNG-data")] * 2
            assert lt.errors == {"http_503:POST /up": 1}
            assert lt.setup_hist["POST /up"].count == 2

            r = await lt.http(http, "GET", f"{base}/asset", "/asset")
            assert r is not None and r.status == 200 and r.body == b"png-bytes"
            assert r.headers.get("etag") == '"abc"'  # case-insensitive, like the loadtest reads it
            with pytest.raises(dataclasses.FrozenInstanceError):
                r.status = 500  # type: ignore[misc]
            r = await lt.http(http, "GET", f"{base}/asset", "/asset", headers={"If-None-Match": '"abc"'})
            assert r is not None and r.status == 304 and r.body == b""

            assert await lt.http(http, "GET", f"http://127.0.0.1:{closed_port}/x", "/x") is None
            assert lt.errors["http:ClientConnectorError"] == 1
            monkeypatch.setattr(recorder, "PLAY_TIMEOUT", aiohttp.ClientTimeout(total=0.2))
            assert await lt.http(http, "GET", f"{base}/slow", "/slow") is None
            assert lt.errors["http:TimeoutError"] == 1, lt.errors
    finally:
        await web_runner.cleanup()


def test_cluster_needs_postgres_and_redis(tmp_path: Path) -> None:
    r = runner.invoke(app, ["cluster", "--instances", "2"],
                      env={"TABLEFORGE_DATABASE_URL": "", "TABLEFORGE_REDIS_URL": "",
                           "TABLEFORGE_DATA_DIR": str(tmp_path)})
    assert r.exit_code == 2, r.output
    assert "PostgreSQL" in r.output


def test_quantiles_from_bucket_deltas() -> None:
    before = parse_prometheus('x_bucket{le="0.01"} 5\nx_bucket{le="0.1"} 5\nx_bucket{le="+Inf"} 5\nx_count 5\n'
                              'x_sum 0.01\n')
    after = parse_prometheus('x_bucket{le="0.01"} 5\nx_bucket{le="0.1"} 105\nx_bucket{le="+Inf"} 105\nx_count 105\n'
                             'x_sum 5.01\n')
    from tableforge.loadtest.hist import hist_delta

    delta = hist_delta(before["hist"]["x"], after["hist"]["x"])
    assert delta["count"] == 100
    p95 = series_quantile(delta, 0.95)
    assert p95 is not None and abs(p95 - 95.5) < 0.01  # 10 ms + 95 % of the 10..100 ms bucket

"""`tableforge loadtest --processes`, its own CPU, pinning, and targets that say why they were not read."""

from __future__ import annotations

import io
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from tableforge.loadtest.affinity import format_cpus, parse_cpus, usable_cpus
from tableforge.loadtest.conductor import Conductor
from tableforge.loadtest.hist import Hist, Timeline
from tableforge.loadtest.model import LoadConfig
from tableforge.loadtest.probes import pid_listening_on
from tableforge.loadtest.recorder import Recorder, new_session
from tableforge.loadtest.report import print_report, write_html
from tableforge.loadtest.workers import deal_rooms
from tests.support.cluster import Cluster, free_port
from tests.support.server import ServerProcess

TWO_CPUS = len(usable_cpus()) >= 2


def _loadtest(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tableforge", "loadtest", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, "COLUMNS": "400"})  # rows unwrapped


def test_two_processes_give_one_report_with_every_player(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    cluster = Cluster(2, pg_url, redis_url, tmp_path / "data").start()
    out = tmp_path / "run.json"
    instance_pids = [s.proc.pid for s in cluster.servers if s.proc]
    before = {pid: os.sched_getaffinity(pid) for pid in instance_pids}
    pins = [] if not TWO_CPUS else ["--pin-client", str(min(usable_cpus())), "--pin-server", str(max(usable_cpus()))]
    try:
        r = _loadtest(*(a for s in cluster.servers for a in ("--url", s.base_url)),
                      "--users", "12", "--rooms", "4", "--duration", "6", "--ramp-up", "2", "--think-time", "0.5",
                      "--seed", "5", "--processes", "2", *pins, "--json", str(out))
        after = {pid: os.sched_getaffinity(pid) for pid in instance_pids}
    finally:
        cluster.stop()
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    res = json.loads(out.read_text())
    # every player played, in two processes of 6 (4 rooms of 3, dealt out whole), and nothing was lost
    assert res["players"] == {"users": 12, "joined": 12, "processes": 2, "per_process": [6, 6]}
    assert res["integrity"]["lost"] == 0 and res["integrity"]["duplicates"] == 0
    assert res["integrity"]["versions_checked"] > 0
    # the merged histograms hold every latency the merged timelines counted (steady phase + ramp-up)
    for kind, all_key in (("delivery", "delivery_all"), ("http", "http_all")):
        in_timeline = sum(s["n"] for s in res["timeline"][kind])
        assert in_timeline > 0
        assert in_timeline == res[all_key]["n"] + res["ramp_up"].get(kind, {"n": 0})["n"], kind
    assert res["delivery_all"]["n"] == sum(s["n"] for s in res["delivery"].values())
    assert res["actions"]["drag"] > 0 and res["delivery"]["token.moving"]["n"] > 0
    assert all(t["measured"] is not None and t["reason"] is None for t in res["targets"]), res["targets"]
    # the generator's CPU: all its processes, two of them playing, each measured
    client = res["client"]
    assert client["cpu_pct_median"] > 0 and client["cpu_pct_max"] >= client["cpu_pct_median"]
    players = [p for p in client["processes"] if p["role"] == "players"]
    assert len(players) == 2 and all(p["cpu_pct_max"] > 0 for p in players), client["processes"]
    assert client["players_processes"] == 2 and client["loop_lag_ms_max"] >= client["loop_lag_ms_median"] >= 0
    assert 0 < client["cpu_share_of_usable_pct"] <= client["cpu_pct_max"]
    assert "playing process(es)" in r.stdout and "12 / 12 (6 + 6)" in r.stdout
    pin = res["pinning"]
    if TWO_CPUS:
        assert pin["pinned"] is True
        assert pin["client_affinity"] == str(min(usable_cpus()))
        assert set(pin["server_affinity"].values()) == {str(max(usable_cpus()))}
        assert after == before  # the instances got their CPUs back
    else:
        assert pin["pinned"] is False


def test_setup_failure_in_a_worker_is_reported(tmp_path: Path) -> None:
    """A server that answers /health but refuses registration: the workers' setup error comes back."""
    script = tmp_path / "fake.py"
    port = free_port()
    script.write_text(
        "from aiohttp import web\n"
        "async def health(_): return web.json_response({'status': 'ok'})\n"
        "async def other(_): return web.json_response({'error': 'nope'}, status=403)\n"
        "app = web.Application(); app.router.add_get('/health', health)\n"
        "app.router.add_route('*', '/{tail:.*}', other)\n"
        f"web.run_app(app, host='127.0.0.1', port={port}, print=None)\n")
    fake = subprocess.Popen([sys.executable, str(script)])
    try:
        from tests.support.waiting import poll_until

        poll_until(lambda: pid_listening_on(port) is not None, 30, "the fake server")
        r = _loadtest("--url", f"http://127.0.0.1:{port}", "--users", "4", "--rooms", "2", "--duration", "2",
                      "--processes", "2", timeout=120)
    finally:
        fake.terminate()
        fake.wait(10)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "setup failed: POST /api/auth/register" in r.stderr and "403" in r.stderr
    assert "Traceback" not in r.stderr


async def test_unreadable_targets_say_why(tmp_path: Path) -> None:
    """An instance with no traffic between two scrapes, one that does not answer, one that restarted:
    each target that cannot be read carries the reason, in the JSON and in both reports."""
    # no traffic at all: not even the catalog warming the maintenance scheduler runs after a start
    server = ServerProcess(free_port(), {"TABLEFORGE_DATA_DIR": str(tmp_path / "data"), "TABLEFORGE_DATABASE_URL": "",
                                         "TABLEFORGE_REDIS_URL": "",
                                         "TABLEFORGE_MAINTENANCE_WARM_CATALOG_SCHEDULE": "off"}, name="idle")
    server.start()
    closed = free_port()
    try:
        cfg = LoadConfig(urls=[server.base_url, f"http://127.0.0.1:{closed}"], users=3, rooms=3, duration=1,
                         ramp_up=0)
        run = Conductor(cfg)
        idle, dead = run.probes
        async with new_session(2) as http:
            for probe in run.probes:
                probe.find_process()
                probe.before = await probe.scrape(http, attempts=2)
            idle.sample()
            for probe in run.probes:
                probe.after = await probe.scrape(http, attempts=2)
        run.steady_seconds = 4.0
        res = run.result_of({"lost": 0, "duplicates": 0, "versions_checked": 0})
        targets = {t["key"]: t for t in res["targets"]}
        db = targets["database_p95_ms"]
        assert db["measured"] is None and db["pass"] is None
        assert f"did not move on {server.base_url} during the 4 s steady phase" in db["reason"]
        assert f"GET http://127.0.0.1:{closed}/metrics failed 2 times" in db["reason"]
        hit_rate = targets["cache_hit_rate_pct"]["reason"]
        assert f"{server.base_url} counted no cache lookup since it started" in hit_rate
        assert "no HTTP request" in targets["api_p95_ms"]["reason"]
        assert "single player" in targets["delivery_p95_ms"]["reason"]
        # the idle instance was sampled: memory and CPU are read; the dead one is named
        memory = targets["memory_mb_per_1000_users"]
        assert memory["measured"] > 0 and memory["reason"] is None
        dead_inst = next(i for i in res["server"]["instances"] if i["url"] == dead.url)
        assert f"port {closed}" in dead_inst["not_measured"]

        buf = io.StringIO()
        print_report(res, Console(file=buf, width=5000))
        text = buf.getvalue()
        assert f"not read: {db['reason']}" in text and "n/a" in text
        write_html(res, tmp_path / "r.html")
        assert "did not move on" in (tmp_path / "r.html").read_text()

        # the same URL restarted between the scrapes: its counters started over
        async with new_session(1) as http:
            idle.before = await idle.scrape(http)
            server.stop()
            server.start()
            idle.after = await idle.scrape(http)
        assert idle.unreadable() is not None and "restarted during the steady phase" in idle.unreadable()
        restarted = Conductor(LoadConfig(urls=[server.base_url], users=6, rooms=3, duration=1, ramp_up=0))
        restarted.probes = [idle]
        reason = next(t for t in restarted.result_of({"lost": 0, "duplicates": 0, "versions_checked": 0})["targets"]
                      if t["key"] == "database_p95_ms")["reason"]
        assert f"{server.base_url} restarted during the steady phase" in reason
    finally:
        server.stop()


def test_worker_measurements_merge_like_one_process() -> None:
    rng = random.Random(3)
    cfg = LoadConfig(urls=["http://127.0.0.1:1"], users=2, rooms=1, duration=1, ramp_up=0)
    whole, parts = Recorder(cfg), [Recorder(cfg), Recorder(cfg)]
    for rec in (whole, *parts):
        rec.start_timelines(0.0)
    for i in range(3000):
        ms = rng.expovariate(1 / 20)
        part = parts[i % 2]
        for rec in (whole, part):
            rec.delivery_hist.setdefault("token.moved", Hist()).record(ms)
            rec.tl_delivery.record(i / 1000, ms)
            if i % 1000 == 0:
                rec.error("ws_closed:x")
        part.players_joined += 1
    merged = Recorder(cfg)
    for part in parts:
        merged.absorb(part.to_wire())
    assert merged.delivery_hist["token.moved"].summary() == whole.delivery_hist["token.moved"].summary()
    assert merged.errors == whole.errors == {"ws_closed:x": 3}
    assert merged.players_joined == 3000
    assert [s["n"] for s in merged.tl_delivery.series()] == [1000, 1000, 1000]
    # each second's reservoir stays within its cap and keeps both processes' samples
    assert all(len(v) == min(1000, whole.tl_delivery.cap) for v in merged.tl_delivery.seconds.values())
    small = Timeline(0.0, cap=10)
    small.merge({0: [1.0] * 10}, {0: 30})
    small.merge({0: [2.0] * 10}, {0: 10})
    assert small.counts[0] == 40 and len(small.seconds[0]) == 10
    assert small.seconds[0].count(1.0) == 8 and small.seconds[0].count(2.0) == 2  # 30 : 10 of the cap


def test_rooms_are_dealt_whole_and_cpu_lists_parse() -> None:
    assert deal_rooms(5, 2) == [[0, 2, 4], [1, 3]]
    assert sorted(r for part in deal_rooms(200, 3) for r in part) == list(range(200))
    cpus = usable_cpus()
    assert parse_cpus(format_cpus(cpus)) == cpus
    assert format_cpus({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    with pytest.raises(ValueError, match="not available"):
        parse_cpus(str(max(cpus) + 1))
    with pytest.raises(ValueError, match="not a CPU list"):
        parse_cpus("1-0")


@pytest.mark.skipif(not TWO_CPUS, reason="pinning apart needs two CPUs")
def test_cluster_pins_its_instances(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    import signal
    import uuid

    from tests.support.waiting import poll_until

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
    cpu = max(usable_cpus())
    env = {**os.environ, "TABLEFORGE_DATABASE_URL": pg_url, "TABLEFORGE_REDIS_URL": redis_url,
           "TABLEFORGE_REDIS_NAMESPACE": f"c{uuid.uuid4().hex[:8]}", "TABLEFORGE_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "tableforge", "cluster", "--instances", "1", "--base-port",
                             str(base), "--pin-server", str(cpu)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        poll_until(lambda: pid_listening_on(base) is not None, 60, "the instance listening", poll=0.2)
        pid = pid_listening_on(base)
        assert pid is not None
        threads = [t.id for t in psutil.Process(pid).threads()]
        assert {frozenset(os.sched_getaffinity(t)) for t in threads} == {frozenset({cpu})}
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


@pytest.mark.parametrize(("args", "message"), [
    (["loadtest", "--url", "http://127.0.0.1:1", "--users", "4", "--rooms", "2", "--processes", "3"],
     "--processes (3) cannot exceed --rooms (2)"),
    (["loadtest", "--url", "http://127.0.0.1:1", "--users", "4", "--rooms", "2", "--processes", "0"], "--processes"),
    (["loadtest", "--url", "http://127.0.0.1:1", "--users", "2", "--rooms", "1", "--pin-client", "one"],
     "--pin-client: 'one' is not a CPU list"),
    (["loadtest", "--url", "http://127.0.0.1:1", "--users", "2", "--rooms", "1", "--pin-server", "4096"],
     "--pin-server: CPU(s) 4096 not available"),
    (["loadtest", "--url", "http://127.0.0.1:1", "--users", "2", "--rooms", "1", "--pin-server", ""],
     "--pin-server: an empty CPU list"),
    (["cluster", "--instances", "1", "--pin-server", "0-"], "--pin-server: '0-' is not a CPU list"),
])
def test_bad_process_and_pinning_arguments(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from tableforge.cli import app

    r = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output


def test_a_player_offline_at_the_end_is_checked_up_to_what_it_saw() -> None:
    from tableforge.loadtest.model import Player, Room, integrity

    room = Room(0, final_version=10)
    online = Player(0, "a", room, "http://x", random.Random(0), first_version=2,
                    versions=[3, 4, 6, 7, 8, 8, 9, 10, 10], acked={8})  # 8: its own ack, then the event
    gone = Player(1, "b", room, "http://x", random.Random(0), first_version=2, versions=[3, 5, 6],
                  online_at_end=False)  # its last reconnect failed after version 6
    result = integrity([online, gone])
    # online: 5 missing, 8 and 10 twice (8 its own); gone: 4 missing before its last version, 7-10 never checked
    assert result == {"lost": 2, "duplicates": 2, "duplicates_of_own_acks": 1, "versions_checked": 8 + 4,
                      "offline_at_end": 1, "versions_not_checked": 4}


def test_a_quantile_past_the_last_bucket_is_flagged_as_a_lower_bound() -> None:
    from tableforge.loadtest.hist import beyond_last_bucket, series_quantile

    slow = {"buckets": {"1.0": 10.0, "5.0": 50.0, "+Inf": 100.0}, "sum": 400.0, "count": 100.0}
    fast = {"buckets": {"1.0": 96.0, "5.0": 100.0, "+Inf": 100.0}, "sum": 40.0, "count": 100.0}
    assert series_quantile(slow, 0.95) == 5000.0 and beyond_last_bucket(slow, 0.95)
    assert series_quantile(fast, 0.95) is not None and not beyond_last_bucket(fast, 0.95)


async def test_an_ack_after_the_wait_still_counts_its_version() -> None:
    """A server that acks `chat.send` late: the client gives up waiting (a timeout, counted), yet the
    version in the late ack reached the player, so it is not reported lost."""
    import asyncio

    from aiohttp import WSMsgType, web

    from tableforge.loadtest.model import Player, Room, integrity
    from tableforge.loadtest.players import Simulation
    from tests.support.waiting import wait_until

    release = asyncio.Event()

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                break
            msg = json.loads(frame.data)
            if msg["type"] == "join":
                await ws.send_json({"type": "ack", "id": msg["id"], "version": 4})
            else:
                await release.wait()  # held until the client has given up
                await ws.send_json({"type": "ack", "id": msg["id"], "version": 5})
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    room = Room(0, id="r1")
    p = Player(0, "a", room, base, random.Random(0), token="t")
    sim = Simulation(LoadConfig(urls=[base], users=1, rooms=1, duration=1, ramp_up=0), [p], [room])
    try:
        assert await sim.connect(p)
        assert p.first_version == 4
        assert await sim.request(p, {"type": "chat.send", "room_id": "r1", "text": "hi"}, "chat.send",
                                 wait_s=0.2) is None
        assert sim.errors == {"ack_timeout:chat.send": 1} and sim.unanswered == 1
        release.set()
        await wait_until(lambda: sim.late_acks == 1, 10, "the late ack")
        room.final_version = 5
        assert p.versions == [5]
        assert integrity([p])["lost"] == 0
    finally:
        await sim.disconnect(p)
        await runner.cleanup()

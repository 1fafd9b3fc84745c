"""Scale-out with real server processes: one room's players spread over several instances."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.client import Api, Player, Ws
from tests.support.cluster import Cluster
from tests.support.metrics import sample
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def trio(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(3, pg_url, redis_url, tmp_path_factory.mktemp("trio")).start()
    yield cluster
    cluster.stop()


async def _admin(api: Api, cluster: Cluster) -> Player:
    """An administrator, made the operator's way: `tableforge users create NAME --admin`."""
    name = f"admin{uuid.uuid4().hex[:8]}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tableforge", "users", "create", name, "--admin", "--password", "admin-password",
        env={**os.environ, **cluster.env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    r = await api.http.post("/api/auth/login", json={"username": name, "password": "admin-password"})
    api.http.cookies.clear()
    return Player(r.json()["user"], r.json()["token"])


async def _sockets(trio: Cluster, players: list[Player]) -> list[Ws]:
    """Player i connects to instance i % 3."""
    return [await Ws.connect(trio.servers[i % len(trio.servers)].ws_url, p.token) for i, p in enumerate(players)]


async def test_every_event_reaches_every_other_player_once_in_order(trio: Cluster) -> None:
    async with Api(trio.servers[0].base_url) as api:
        players = [await api.register(f"p{i}") for i in range(6)]
        room = await api.room(players[0], *players[1:])
        asset = await api.asset(players[0], room["id"])
        socks = await _sockets(trio, players)
        for s in socks:
            await s.request("join", room_id=room["id"])
        # the joining phase: socket i hears every later player join (never its own), wherever they sit
        for i, s in enumerate(socks):
            joined = {(await s.next_event("player.joined"))["user"]["id"] for _ in range(len(socks) - 1 - i)}
            assert joined == {p.id for p in players[i + 1:]}
        tokens = [(await s.request("token.add", room_id=room["id"], asset_id=asset["id"], x=i, y=i))["token"]
                  for i, s in enumerate(socks)]

        async def play(i: int) -> list[int]:
            mine = []
            for step in range(10):
                if step % 3 == 2:
                    ack = await socks[i].request("chat.send", room_id=room["id"], text=f"{i}:{step}")
                else:
                    ack = await socks[i].request("token.move", room_id=room["id"], token_id=tokens[i]["id"],
                                                 x=step, y=i)
                assert ack["type"] == "ack", ack
                mine.append(ack["version"])
            return mine

        acked = await asyncio.gather(*(play(i) for i in range(6)))
        all_versions = sorted(v for vs in acked for v in vs)
        assert all_versions == list(range(all_versions[0], all_versions[0] + 60)), "gap-free across instances"
        for i, s in enumerate(socks):
            expected = sorted(set(all_versions) - set(acked[i]))
            got: list[int] = []
            async with asyncio.timeout(20):
                while len(got) < len(expected):
                    event = await s.next_event()
                    if event.get("version", 0) >= all_versions[0]:
                        got.append(event["version"])
            assert got == expected, f"player {i}: exactly once, in version order"
        # Nothing more is on its way: events reach each socket in version order, so after a last change
        # the next versioned event every other socket sees is that change (no late duplicate before it).
        for sender in (0, 1):
            last = await socks[sender].request("chat.send", room_id=room["id"], text="that's all")
            for i, s in enumerate(socks):
                if i != sender:
                    event = await s.next_event()
                    while "version" not in event:
                        event = await s.next_event()
                    assert event["version"] == last["version"], f"player {i}: nothing after the play but the last"
        for s in socks:
            await s.close()


async def test_presence_members_send_to_user_broadcast_and_admin(trio: Cluster) -> None:
    async with Api(trio.servers[0].base_url) as api:
        admin = await _admin(api, trio)
        alice, bob, carol = (await api.register("al"), await api.register("bo"), await api.register("ca"))
        room = await api.room(alice, bob, carol)
        a0 = await Ws.connect(trio.servers[0].ws_url, alice.token)
        a1 = await Ws.connect(trio.servers[1].ws_url, alice.token)
        b2 = await Ws.connect(trio.servers[2].ws_url, bob.token)
        c1 = await Ws.connect(trio.servers[1].ws_url, carol.token)
        for s in (a0, a1, b2, c1):
            await s.request("join", room_id=room["id"])

        members = (await api.http.get(f"/api/admin/rooms/{room['id']}/members", headers=admin.headers)).json()
        assert members["connections"] == 4 and set(members["online_users"]) == {alice.id, bob.id, carol.id}
        online = (await api.http.get(f"/api/rooms/{room['id']}/players", params={"online": "true"},
                                     headers=bob.headers)).json()["players"]
        assert {p["user"]["id"] for p in online} == {alice.id, bob.id, carol.id}

        sent = await api.http.post(f"/api/admin/users/{alice.id}/message", json={"message": "hi alice"},
                                   headers=admin.headers)
        assert sent.status_code == 202 and sent.json()["instances"] == 2, "only the instances holding alice"
        for s in (a0, a1):
            assert (await s.next_event("system.message"))["message"] == "hi alice"

        assert (await api.http.post("/api/admin/broadcast", json={"message": "server news"},
                                    headers=admin.headers)).status_code == 202
        for s in (a0, a1):
            assert (await s.next_event("system.broadcast"))["message"] == "server news"
        # An instance reads its control channels on one connection, in publish order: bob's and carol's
        # sockets would have had alice's message before the broadcast that was sent after it.
        for s in (b2, c1):
            event = await s.next_event()
            while event["type"] not in ("system.message", "system.broadcast"):
                event = await s.next_event()
            assert (event["type"], event["message"]) == ("system.broadcast", "server news"), "not alice's message"

        listed = (await api.http.get("/api/admin/instances", headers=admin.headers)).json()["instances"]
        ours = {i["instance_id"]: i for i in listed if i["instance_id"].startswith(trio.namespace)}
        assert set(ours) == {trio.instance_id(i) for i in range(3)}
        assert all({"connections", "rooms", "last_heartbeat", "memory_rss", "uptime"} <= set(i) for i in ours.values())
        stats = (await api.http.get("/api/admin/stats", headers=admin.headers)).json()
        fresh = {i["instance_id"] for i in stats["instances"] if not i.get("stale")}
        assert {trio.instance_id(i) for i in range(3)} <= fresh
        assert (await api.http.get("/api/admin/instances", headers=alice.headers)).status_code == 403

        closing = await api.http.post(f"/api/admin/instances/{trio.instance_id(1)}/close-connections",
                                      headers=admin.headers)
        assert closing.status_code == 202
        assert await a1.closed_with() == 1001 and await c1.closed_with() == 1001
        assert (await a0.request("ping"))["type"] == "pong" and (await b2.request("ping"))["type"] == "pong"
        missing = await api.http.post("/api/admin/instances/nope/close-connections", headers=admin.headers)
        assert missing.status_code == 404
        for s in (a0, b2):
            await s.close()


async def test_logout_on_one_instance_refuses_the_token_on_another(trio: Cluster) -> None:
    async with Api(trio.servers[0].base_url) as a, Api(trio.servers[2].base_url) as b:
        who = await a.register("lo")
        assert (await b.http.get("/api/users/me", headers=who.headers)).status_code == 200  # cached on B now
        assert (await a.http.post("/api/auth/logout", headers=who.headers)).status_code == 204
        assert (await b.http.get("/api/users/me", headers=who.headers)).status_code == 401
        refused = await Ws.connect(trio.servers[1].ws_url, who.token)
        assert await refused.closed_with() == 4401


async def test_a_player_who_drops_and_comes_back_on_another_instance_was_never_gone(trio: Cluster) -> None:
    """The presence grace across instances: the dropped socket's entry in Redis keeps its user online until
    the grace runs out, so their new socket on another instance finds them online and announces nothing."""
    async with Api(trio.servers[0].base_url) as api, httpx.AsyncClient(base_url=trio.servers[1].base_url) as one:
        gm, alice = await api.register("gm"), await api.register("al")
        room = await api.room(gm, alice)
        g = await Ws.connect(trio.servers[0].ws_url, gm.token)
        b = await Ws.connect(trio.servers[1].ws_url, alice.token)
        await g.request("join", room_id=room["id"])
        await b.request("join", room_id=room["id"])
        await g.next_event("player.joined")
        said = (await b.request("chat.send", room_id=room["id"], text="brb"))["version"]
        await g.next_event("chat.message")
        returned = await sample(one, "tableforge_presence_lingered_total", outcome="returned")
        lingering = await sample(one, "tableforge_presence_lingering")

        async def metric_is(name: str, value: float, **labels: str) -> bool:
            return await sample(one, name, **labels) == value

        b.sock.transport.abort()  # the connection to instance 1 drops (1006)
        await eventually(lambda: metric_is("tableforge_presence_lingering", lingering + 1), what="the drop handled")
        back = await Ws.connect(trio.servers[2].ws_url, alice.token)
        rejoin = await back.request("join", room_id=room["id"], since=said)
        assert rejoin["events"] == [] and rejoin["version"] == said, "nothing was stored"
        assert (await g.request("chat.send", room_id=room["id"], text="welcome back"))["version"] == said + 1
        await eventually(lambda: metric_is("tableforge_presence_lingered_total", returned + 1, outcome="returned"),
                         what="instance 1's grace to run out")
        again = await g.request("chat.send", room_id=room["id"], text="still here?")
        assert again["version"] == said + 2, "the grace ran out without a player.left: Alice is still here"
        assert [e for e in g.drain() if e["type"].startswith("player.")] == []
        members = await api.http.get(f"/api/rooms/{room['id']}/players", params={"online": "true"},
                                     headers=gm.headers)
        assert alice.id in {p["user"]["id"] for p in members.json()["players"]}
        await back.close()
        left = await g.next_event("player.left")
        assert left["user"]["id"] == alice.id and left["version"] == said + 3
        await g.close()


@pytest.fixture
def victim_cluster(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    # A presence grace longer than any wait here: a player.left seen was announced by the stop itself.
    cluster = Cluster(2, pg_url, redis_url, tmp_path, TABLEFORGE_PRESENCE_GRACE_SECONDS="120").start()
    yield cluster
    cluster.stop()


async def test_kill9_instance_disappears_and_its_players_resync_elsewhere(victim_cluster: Cluster) -> None:
    live, doomed = victim_cluster.servers
    async with Api(live.base_url) as api:
        admin = await _admin(api, victim_cluster)
        gm, pl = await api.register("gm"), await api.register("pl")
        room = await api.room(gm, pl)
        asset = await api.asset(gm, room["id"])
        g = await Ws.connect(live.ws_url, gm.token)
        p = await Ws.connect(doomed.ws_url, pl.token)
        await g.request("join", room_id=room["id"])
        await p.request("join", room_id=room["id"])
        await g.next_event("player.joined")
        token = (await g.request("token.add", room_id=room["id"], asset_id=asset["id"], x=1, y=1))["token"]
        last = (await p.next_event("token.added"))["version"]

        doomed.kill()
        await g.request("token.move", room_id=room["id"], token_id=token["id"], x=50, y=60)
        left = await g.next_event("player.left", seconds=30)  # the registry expiry is 3 s here
        assert left["user"]["id"] == pl.id
        instances = (await api.http.get("/api/admin/instances", headers=admin.headers)).json()["instances"]
        assert victim_cluster.instance_id(1) not in {i["instance_id"] for i in instances}
        members = (await api.http.get(f"/api/admin/rooms/{room['id']}/members", headers=admin.headers)).json()
        assert members["online_users"] == [gm.id]

        back = await Ws.connect(live.ws_url, pl.token)
        resync = await back.request("join", room_id=room["id"], since=last)
        types = [e["type"] for e in resync["events"]]
        assert "token.moved" in types and "player.left" in types
        snap = await api.snapshot(pl, room["id"])
        assert (snap["tokens"][0]["x"], snap["tokens"][0]["y"]) == (50, 60), "the board survived"
        for s in (g, back):
            await s.close()


async def test_sigterm_closes_sockets_1012_and_keeps_every_acked_change(victim_cluster: Cluster) -> None:
    live, leaving = victim_cluster.servers
    async with Api(live.base_url) as api:
        gm, alice = await api.register("gm"), await api.register("al")
        room = await api.room(gm, alice)
        asset = await api.asset(gm, room["id"])
        watcher = await Ws.connect(live.ws_url, alice.token)
        await watcher.request("join", room_id=room["id"])
        s = await Ws.connect(leaving.ws_url, gm.token)
        await s.request("join", room_id=room["id"])
        token = (await s.request("token.add", room_id=room["id"], asset_id=asset["id"], x=0, y=0))["token"]
        acks = [await s.request("token.move", room_id=room["id"], token_id=token["id"], x=i, y=i) for i in range(20)]
        assert all(a["type"] == "ack" for a in acks)
        leaving.stop()
        assert await s.closed_with() == 1012
        # A 1012 close keeps the GM online for the grace (they may come back elsewhere), but an instance
        # that stops cannot keep them: its stop announces them gone.
        left = await watcher.next_event("player.left")
        assert left["user"]["id"] == gm.id
        snap = await api.snapshot(gm, room["id"])
        assert snap["tokens"][0]["x"] == 19 and snap["room"]["version"] >= acks[-1]["version"] + 1
        await watcher.close()


async def test_ten_instances_smoke(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    cluster = Cluster(10, pg_url, redis_url, tmp_path).start()
    try:
        async with Api(cluster.servers[0].base_url) as api:
            players = [await api.register(f"t{i}") for i in range(10)]
            room = await api.room(players[0], *players[1:])
            socks = [await Ws.connect(srv.ws_url, p.token) for srv, p in zip(cluster.servers, players, strict=True)]
            for s in socks:
                await s.request("join", room_id=room["id"])
            said = await socks[3].request("chat.send", room_id=room["id"], text="ten instances")
            for i, s in enumerate(socks):
                if i != 3:
                    heard = await s.next_event("chat.message")
                    assert heard["version"] == said["version"]
            async with httpx.AsyncClient() as http:
                ready = [(await http.get(f"{srv.base_url}/ready")).json()["status"] for srv in cluster.servers]
            assert ready == ["ok"] * 10
            for s in socks:
                await s.close()
    finally:
        cluster.stop()

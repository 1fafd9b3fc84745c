"""Draining and rebalancing through Debian's HAProxy in front of three instances, while players keep
moving their tokens: the drained instance loses every socket (closed with 1012, a few at a time), its
players reconnect through the balancer to the others, every room version reaches every player and
every acknowledged move is the one stored. SIGTERM drains the same way before the process ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.balancing.conftest import Table, make_tables, snapshot
from tests.balancing.support import (
    ROOMS,
    MovingPlayer,
    admin_stats,
    backend_of,
    leastconn_backend,
    scrape,
    server_names,
    start_balancer,
)
from tests.support.client import Player
from tests.support.cluster import Cluster
from tests.support.haproxy import HAProxy
from tests.support.waiting import eventually


class Game:
    """Every player of the tables moving its token through the balancer until `stop_and_check`."""

    def __init__(self, lb: str, tables: list[Table]) -> None:
        self.tables = tables
        self.players = [(t, MovingPlayer(lb, p.token, t.room_id, t.tokens[i], y=float(i)))
                        for t in tables for i, p in enumerate(t.players)]
        self.stop = asyncio.Event()
        self.tasks = [asyncio.ensure_future(mp.play(self.stop)) for _, mp in self.players]

    async def moved(self, more: int) -> None:
        """Until every player has had `more` further moves acknowledged."""
        goal = {id(mp): mp.acked + more for _, mp in self.players}
        await eventually(self._check(lambda: all(mp.acked >= goal[id(mp)] for _, mp in self.players)), 60,
                         f"every player to make {more} more moves")

    def _check(self, predicate: Any) -> Any:
        async def check() -> bool:
            for task in self.tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            return bool(predicate())
        return check

    async def stop_and_check(self, base_url: str) -> None:
        """Stop moving; every version up to each room's final one reached every player, and each
        token is stored where its player's last acknowledged move put it."""
        self.stop.set()
        await asyncio.gather(*self.tasks)
        for table in self.tables:
            snap = await snapshot(base_url, table.players[0], table.room_id)
            final = int(snap["room"]["version"])
            mine = [mp for t, mp in self.players if t is table]
            try:
                await eventually(self._check(lambda mine=mine, final=final: all(not mp.missing(final) for mp in mine)),
                                 20, "every version to reach every player")
            except AssertionError:
                raise AssertionError(f"room {table.room_id} at v{final}: " + "; ".join(
                    f"missing {mp.missing(final)} (first v{mp.first_version}, covered {mp.covered}, "
                    f"on {mp.servers}, closes {list(zip(mp.close_codes, mp.close_reasons, strict=True))})"
                    for mp in mine)) from None
            stored = {t["id"]: (t["x"], t["y"]) for t in snap["tokens"]}
            for mp in mine:
                assert mp.errors == []
                assert mp.last_acked is not None and stored[mp.token_id] == mp.last_acked
        for _, mp in self.players:
            await mp.finish()

    async def cancel(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        for _, mp in self.players:
            await mp.finish()


@pytest.fixture
async def balancer(trio: Cluster, workdir: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[HAProxy, str]]:
    backend = backend_of(ROOMS) if request.param == "rooms" else leastconn_backend()
    proxy, lb = start_balancer(trio, backend, workdir)
    yield proxy, lb
    proxy.stop()


async def _ready(server_url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(f"{server_url}/ready")
    return r.status_code, r.json()


async def _drain_call(base_url: str, admin: Player, method: str, instance_id: str,
                      body: dict[str, Any] | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.request(method, f"{base_url}/api/admin/instances/{instance_id}/drain", json=body,
                               headers=admin.headers)
    assert r.status_code == 202, r.text
    return dict(r.json())


@pytest.mark.parametrize("balancer", ["rooms"], indirect=True)
async def test_an_admin_drain_moves_every_socket_without_losing_a_change(
        trio: Cluster, admin: Player, balancer: tuple[HAProxy, str]) -> None:
    proxy, lb = balancer
    names = server_names(trio)
    tables = await make_tables(trio.servers[0].base_url, rooms=6, players_per_room=2)
    game = Game(lb, tables)
    try:
        await game.moved(3)
        homes = {t.room_id: mp.servers[-1] for t, mp in game.players}
        victim = max(set(homes.values()), key=list(homes.values()).count)
        index = names[victim]
        victim_id = trio.instance_id(index)
        asker = trio.servers[(index + 1) % 3].base_url  # another instance: the command crosses the control channel
        # the notice outlasts the balancer's two failed checks (300 ms apart here): no socket closes
        # before HAProxy has taken the instance out, so each room moves whole to its ring neighbour
        out = await _drain_call(asker, admin, "POST", victim_id, {"window_seconds": 2, "notice_seconds": 2})
        assert out == {"instance_id": victim_id, "draining": True, "window_seconds": 2, "notice_seconds": 2}
        server = trio.servers[index]

        async def not_ready() -> bool:
            status, body = await _ready(server.base_url)
            return status == 503 and body["status"] == "draining" and body["checks"]["drain"]["cause"] == "admin"

        await eventually(not_ready, 10, "the drained instance's /ready to say 503 draining")
        # a socket straight to it is refused at the handshake (HTTP 503), while it still serves HTTP
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(server.ws_url, additional_headers=tables[0].players[0].headers)
        assert refused.value.response.status_code == 503
        assert json.loads(refused.value.response.body)["error"]["code"] == "instance_draining"

        async def emptied() -> bool:
            return int((await admin_stats(asker, admin.token))[victim_id]["connections"]) == 0

        await eventually(emptied, 30, "the drained instance to hold no socket")
        await asyncio.to_thread(proxy.wait_state, "tableforge", victim, "DOWN")
        await game.moved(3)
        await game.stop_and_check(trio.servers[0].base_url)
        for table, mp in game.players:
            if homes[table.room_id] == victim:
                assert 1012 in mp.close_codes and mp.reconnects >= 1 and mp.servers[-1] != victim
            else:
                assert mp.reconnects == 0 and mp.close_codes == [1000]  # their rooms were not disturbed
        for table in tables:  # each moved room is whole again on its new instance
            assert len({mp.servers[-1] for t, mp in game.players if t is table}) == 1, [
                (t.room_id[:8], mp.servers, mp.close_codes) for t, mp in game.players]
        metrics = await scrape(server.base_url)
        moved = sum(1 for t, _ in game.players if homes[t.room_id] == victim)
        assert f'tableforge_sockets_moved_total{{why="drain"}} {float(moved)}' in metrics
        assert "tableforge_drain_state 2.0" in metrics

        # resumed: ready again, sockets accepted, the balancer brings it back
        assert await _drain_call(asker, admin, "DELETE", victim_id) == {"instance_id": victim_id, "draining": False}

        async def ready_again() -> bool:
            return (await _ready(server.base_url))[0] == 200

        await eventually(ready_again, 10, "the resumed instance to be ready")
        await asyncio.to_thread(proxy.wait_state, "tableforge", victim, "UP")
        sock = await websockets.connect(server.ws_url, additional_headers=tables[0].players[0].headers)
        await sock.close()
    finally:
        await game.cancel()


@pytest.mark.parametrize("balancer", ["leastconn"], indirect=True)
async def test_sigterm_drains_then_stops_and_no_change_is_lost(
        trio: Cluster, admin: Player, balancer: tuple[HAProxy, str]) -> None:
    proxy, lb = balancer
    tables = await make_tables(trio.servers[0].base_url, rooms=3, players_per_room=3)
    game = Game(lb, tables)
    victim = trio.servers[2]
    try:
        await game.moved(3)
        on_victim = [mp for _, mp in game.players if mp.servers[-1] == "tf3"]
        assert len(on_victim) == 3  # least-connections: 9 sockets, 3 each
        assert victim.proc is not None
        victim.proc.send_signal(signal.SIGTERM)

        async def draining() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                status, body = await _ready(victim.base_url)
                return status == 503 and body["checks"]["drain"]["cause"] == "signal"
            return False

        await eventually(draining, 10, "/ready to say 503 (draining) after SIGTERM")
        await asyncio.wait_for(asyncio.to_thread(victim.proc.wait), 40)  # it stops by itself once drained
        assert victim.proc.returncode in (0, -signal.SIGTERM)
        await asyncio.to_thread(proxy.wait_state, "tableforge", "tf3", "DOWN")
        await game.moved(3)
        await game.stop_and_check(trio.servers[0].base_url)
        for mp in on_victim:  # closed by the drain (not by the server's own stop), and moved
            assert (mp.close_codes[0], mp.close_reasons[0]) == (1012, "server draining")
            assert mp.servers[-1] in ("tf1", "tf2")
        log = victim.log()
        assert '"drain.begin"' in log and '"cause": "signal"' in log and '"drain.done"' in log
    finally:
        await game.cancel()
        if victim.proc is not None and victim.proc.poll() is not None:
            victim.start()


@pytest.mark.parametrize("balancer", ["leastconn"], indirect=True)
async def test_rebalance_sheds_the_busiest_instance_toward_the_mean(
        trio: Cluster, admin: Player, balancer: tuple[HAProxy, str]) -> None:
    proxy, lb = balancer
    base = trio.servers[0].base_url
    # skew: the two others drained (instantly), so every socket lands on the first; then resumed
    for i in (1, 2):
        await _drain_call(base, admin, "POST", trio.instance_id(i), {"window_seconds": 0, "notice_seconds": 0})
        await asyncio.to_thread(proxy.wait_state, "tableforge", f"tf{i + 1}", "DOWN")
    tables = await make_tables(base, rooms=2, players_per_room=3)
    game = Game(lb, tables)
    try:
        await game.moved(2)
        assert {mp.servers[-1] for _, mp in game.players} == {"tf1"}
        for i in (1, 2):
            await _drain_call(base, admin, "DELETE", trio.instance_id(i))
            await asyncio.to_thread(proxy.wait_state, "tableforge", f"tf{i + 1}", "UP")
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(f"{base}/api/admin/rebalance", headers=admin.headers,
                                json={"tolerance": 0.2, "min_sockets": 1, "window_seconds": 1})
        assert r.status_code == 202, r.text
        plan = {i["instance_id"]: (i["connections"], i["shed"]) for i in r.json()["instances"]}
        assert plan == {trio.instance_id(0): (6, 4), trio.instance_id(1): (0, 0), trio.instance_id(2): (0, 0)}
        assert r.json()["shed"] == 4 and r.json()["mean"] == 2

        async def even() -> bool:
            counts = [int(s["connections"]) for s in (await admin_stats(base, admin.token)).values()]
            return sorted(counts) == [2, 2, 2]

        await eventually(even, 30, "the sockets to be spread 2/2/2")
        await game.moved(2)
        await game.stop_and_check(base)
        assert sum(mp.reconnects for _, mp in game.players) == 4
        # nothing more to do now: the same command sheds nothing
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(f"{base}/api/admin/rebalance", headers=admin.headers, json={"min_sockets": 1})
        assert r.status_code == 202 and r.json()["shed"] == 0
    finally:
        await game.cancel()
        for i in (1, 2):
            await _drain_call(base, admin, "DELETE", trio.instance_id(i))


async def test_drain_and_rebalance_need_an_admin_and_a_live_instance(trio: Cluster, admin: Player) -> None:
    base = trio.servers[0].base_url
    async with httpx.AsyncClient(timeout=10) as http:
        user = (await http.post(f"{base}/api/auth/register",
                                json={"username": f"u{id(http)}", "password": "correct horse"})).json()
        http.cookies.clear()  # the register's session cookie would authenticate the calls below
        headers = {"Authorization": f"Bearer {user['token']}"}
        r = await http.post(f"{base}/api/admin/instances/{trio.instance_id(1)}/drain", headers=headers)
        assert r.status_code == 403
        r = await http.post(f"{base}/api/admin/rebalance")
        assert r.status_code == 401
        r = await http.post(f"{base}/api/admin/instances/nobody/drain", headers=admin.headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "instance_not_found"
        r = await http.post(f"{base}/api/admin/instances/{trio.instance_id(1)}/drain", headers=admin.headers,
                            json={"window_seconds": -1})
        assert r.status_code == 422
        r = await http.post(f"{base}/api/admin/rebalance", headers=admin.headers, json={"tolerance": "lots"})
        assert r.status_code == 422
        r = await http.post(f"{base}/api/admin/rebalance", headers=admin.headers, json={"surprise": 1})
        assert r.status_code == 422
    # nothing was drained by the refused calls
    assert all(s.get("drain", {}).get("state") == "serving"
               for s in (await admin_stats(base, admin.token)).values())

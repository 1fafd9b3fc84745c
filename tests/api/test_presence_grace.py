"""A player whose socket drops and who is back within the presence grace was never gone; a goodbye is
announced at once (docs/protocol.md, "Presence").

Each server here is this module's own, so its presence metrics count only these tests' sockets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import free_port
from tests.support.client import Api
from tests.support.metrics import sample
from tests.support.server import ServerProcess
from tests.support.waiting import eventually


def _server(tmp_path_factory: pytest.TempPathFactory, name: str, grace: str | None) -> Iterator[ServerProcess]:
    env = {"TABLEFORGE_DATA_DIR": str(tmp_path_factory.mktemp(name))}
    if grace is not None:
        env["TABLEFORGE_PRESENCE_GRACE_SECONDS"] = grace
    srv = ServerProcess(free_port(), env, name=name)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def default_grace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _server(tmp_path_factory, "grace-default", None)


@pytest.fixture(scope="module")
def long_grace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A grace far longer than any wait here: what is announced was not waiting for it."""
    yield from _server(tmp_path_factory, "grace-long", "120")


async def _lingering(api: Api) -> float:
    return await sample(api.http, "tableforge_presence_lingering")


async def _online(api: Api, gm: Any, room_id: str) -> set[str]:
    r = await api.http.get(f"/api/rooms/{room_id}/players", params={"online": "true"}, headers=gm.headers)
    return {p["user"]["id"] for p in r.json()["players"]}


async def test_a_player_back_within_the_grace_was_never_gone(default_grace: ServerProcess) -> None:
    async with Api(default_grace.base_url) as api:
        gm, alice, room, a, b = await api.table()
        said = (await b.request("chat.send", room_id=room["id"], text="brb"))["version"]
        await a.next_event("chat.message")

        b.sock.transport.abort()  # the connection drops without a word (1006)
        await eventually(lambda: _is(_lingering(api), 1), what="the drop handled")
        assert alice.id in await _online(api, gm, room["id"]), "online while the grace lasts"

        b2 = await api.ws(alice)
        back = await b2.request("join", room_id=room["id"], since=said)
        assert back["type"] == "ack" and back["events"] == [] and back["version"] == said, "nothing was stored"
        chat = await a.request("chat.send", room_id=room["id"], text="welcome back")
        assert chat["version"] == said + 1 and (await b2.next_event("chat.message"))["version"] == said + 1
        assert [e for e in a.drain() if e["type"].startswith("player.")] == []

        # The grace runs out: the old socket's presence goes, and Alice, still here, is not announced.
        await eventually(lambda: _is(sample(api.http, "tableforge_presence_lingered_total", outcome="returned"), 1),
                         what="the grace to run out")
        assert await _lingering(api) == 0
        assert alice.id in await _online(api, gm, room["id"])
        again = await a.request("chat.send", room_id=room["id"], text="still here?")
        assert again["version"] == said + 2 and (await b2.next_event("chat.message"))["version"] == said + 2
        assert [e for e in a.drain() if e["type"].startswith("player.")] == []

        await b2.close()  # a goodbye (1000): announced at once
        left = await a.next_event("player.left")
        assert left["user"]["id"] == alice.id and left["version"] == said + 3
        assert alice.id not in await _online(api, gm, room["id"])
        await a.close()


async def test_a_reconnecting_close_lingers_and_a_goodbye_does_not_wait_for_it(long_grace: ServerProcess) -> None:
    async with Api(long_grace.base_url) as api:
        gm, alice, bob = await api.register("gm"), await api.register("al"), await api.register("bo")
        room = await api.room(gm, alice, bob)
        a, b, c = await api.ws(gm), await api.ws(alice), await api.ws(bob)
        await a.request("join", room_id=room["id"])
        for s in (b, c):
            await s.request("join", room_id=room["id"])
            await a.next_event("player.joined")
        before = await _lingering(api)

        await b.close(4000)  # "coming straight back", as the web board's reconnect closes
        await eventually(lambda: _is(_lingering(api), before + 1), what="the close handled")
        assert alice.id in await _online(api, gm, room["id"])
        b2 = await api.ws(alice)
        rejoined = await b2.request("join", room_id=room["id"])
        chat = await a.request("chat.send", room_id=room["id"], text="hi")
        assert chat["version"] == rejoined["version"] + 1, "the rejoin stored no player.joined"
        assert [e for e in a.drain() if e["type"].startswith("player.")] == []

        # Alice leaves for good from her new socket: the old one's grace (two minutes) does not hold her.
        assert (await b2.request("leave", room_id=room["id"]))["type"] == "ack"
        left = await a.next_event("player.left")
        assert left["user"]["id"] == alice.id and left["version"] == chat["version"] + 1
        assert alice.id not in await _online(api, gm, room["id"])

        # Bob closes with 1000: he said goodbye, nothing lingers.
        await c.close()
        left = await a.next_event("player.left")
        assert left["user"]["id"] == bob.id
        assert await _lingering(api) == before + 1  # only Alice's old socket (holding her send-to-user mark)
        await b2.close()
        await a.close()


async def test_a_stopping_server_announces_its_lingering_players(tmp_path_factory: pytest.TempPathFactory) -> None:
    """An embedded server that stops cannot keep anyone online: every lingering socket's player.left is
    stored as it stops, as a socket closed at the stop always had it."""
    for srv in _server(tmp_path_factory, "grace-stop", "120"):
        async with Api(srv.base_url) as api:
            gm, alice, room, _gm_socket, b = await api.table()
            b.sock.transport.abort()
            await eventually(lambda: _is(_lingering(api), 1), what="the drop handled")
            version = (await api.snapshot(gm, room["id"]))["room"]["version"]
            srv.stop()  # the GM's socket closes with 1012, which lingers too
            srv.start()
            back = await api.ws(gm)
            rejoin = await back.request("join", room_id=room["id"], since=version)
            left = sorted(e["user"]["id"] for e in rejoin["events"] if e["type"] == "player.left")
            assert left == sorted([alice.id, gm.id])
            await back.close()


async def _is(value: Any, expected: float) -> bool:
    return bool(await value == expected)


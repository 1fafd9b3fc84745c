"""Sockets spread as each strategy says, through Debian's HAProxy in front of three instances:
least-connections evens them out; room affinity keeps a room's sockets on one instance, and when an
instance dies (kill -9) only its rooms move, each as a whole."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from tests.balancing.conftest import make_tables
from tests.balancing.support import (
    ROOMS,
    admin_stats,
    backend_of,
    leastconn_backend,
    open_socket,
    server_names,
    start_balancer,
)
from tests.support.client import Player
from tests.support.cluster import Cluster
from tests.support.waiting import eventually


async def test_least_connections_spreads_sockets_evenly(trio: Cluster, admin: Player, workdir: Path) -> None:
    proxy, lb = start_balancer(trio, leastconn_backend(), workdir)
    tables = await make_tables(trio.servers[0].base_url, rooms=3, players_per_room=4)
    socks = []
    try:
        for table in tables:
            for p in table.players:
                sock, server = await open_socket(lb, p.token, table.room_id)
                socks.append((sock, server))
        per_server = Counter(server for _, server in socks)
        assert sorted(per_server.values()) == [4, 4, 4]  # one at a time, each to the least busy
        # the instances count the same (rooms interleave: least-connections ignores them)
        counts: dict[str, int] = {}

        async def counted() -> bool:
            nonlocal counts
            counts = {i: int(s["connections"]) for i, s in (await admin_stats(trio.servers[0].base_url,
                                                                              admin.token)).items()}
            return sum(counts.values()) == 12

        await eventually(counted, 20, "every instance to count its sockets")
        assert sorted(counts.values()) == [4, 4, 4]
        rooms_per_server = {server: {t.room_id for t in tables for p in t.players} for server in per_server}
        assert all(len(rooms) == 3 for rooms in rooms_per_server.values())
    finally:
        for sock, _ in socks:
            await sock.close()
        proxy.stop()


async def test_room_affinity_keeps_each_room_on_one_instance(trio: Cluster, workdir: Path) -> None:
    proxy, lb = start_balancer(trio, backend_of(ROOMS), workdir)
    tables = await make_tables(trio.servers[0].base_url, rooms=12, players_per_room=2)
    socks = []
    try:
        placed: dict[str, set[str]] = {}
        for table in tables:
            for p in table.players:
                sock, server = await open_socket(lb, p.token, table.room_id)
                socks.append(sock)
                placed.setdefault(table.room_id, set()).add(server)
        assert all(len(servers) == 1 for servers in placed.values()), placed
        home = {room: next(iter(servers)) for room, servers in placed.items()}
        assert len(set(home.values())) >= 2  # 12 rooms on a ring of three: not all on one
        # a player coming back (a reload, another tab) lands where its room is
        again, server = await open_socket(lb, tables[0].players[1].token, tables[0].room_id)
        socks.append(again)
        assert server == home[tables[0].room_id]
        # without the hint (an older client) sockets are spread, not pinned: HAProxy's round robin
        spread = set()
        for _ in range(6):
            sock, server = await open_socket(lb, tables[1].players[0].token, None)
            socks.append(sock)
            spread.add(server)
        assert len(spread) >= 2
    finally:
        for sock in socks:
            await sock.close()
        proxy.stop()


async def test_a_dead_instance_s_rooms_move_and_the_others_stay(trio: Cluster, workdir: Path) -> None:
    proxy, lb = start_balancer(trio, backend_of(ROOMS), workdir)
    tables = await make_tables(trio.servers[0].base_url, rooms=9, players_per_room=2)
    names = server_names(trio)
    socks: dict[str, list] = {}
    try:
        home: dict[str, str] = {}
        for table in tables:
            for p in table.players:
                sock, server = await open_socket(lb, p.token, table.room_id)
                socks.setdefault(table.room_id, []).append(sock)
                home[table.room_id] = server
        by_server = Counter(home.values())
        victim, _ = by_server.most_common(1)[0]
        victim_rooms = {room for room, server in home.items() if server == victim}
        for sock_list in socks.values():  # join: the server must be serving each socket for real
            for sock in sock_list:
                await sock.send('{"type":"ping","id":1}')
                assert '"pong"' in await asyncio.wait_for(sock.recv(), 10)

        trio.servers[names[victim]].kill()  # kill -9: no goodbye
        for room in victim_rooms:
            for sock in socks[room]:
                await asyncio.wait_for(sock.wait_closed(), 20)
                assert sock.close_code == 1006  # the connection just ended: no close frame
        for room, sock_list in socks.items():
            if room not in victim_rooms:
                assert all(s.close_code is None for s in sock_list), "a room on a live instance was disturbed"

        moved: dict[str, set[str]] = {}
        for table in tables:
            if table.room_id not in victim_rooms:
                continue
            for p in table.players:  # reconnect through the balancer, as the clients do
                sock, server = await open_socket(lb, p.token, table.room_id)
                socks[table.room_id].append(sock)
                moved.setdefault(table.room_id, set()).add(server)
        assert all(len(s) == 1 and victim not in s for s in moved.values()), moved
        # the rooms of the live instances still hash where they were: only the dead one's moved
        for table in tables:
            if table.room_id not in victim_rooms:
                _, server = await open_socket(lb, table.players[0].token, table.room_id)
                assert server == home[table.room_id]
    finally:
        for sock_list in socks.values():
            for sock in sock_list:
                await sock.close()
        proxy.stop()
        for server in trio.servers:  # bring the victim back for the module's other tests
            if server.proc is not None and server.proc.poll() is not None:
                server.start()

"""RedisPresence across instances: first/last socket semantics, a killed instance, send-to-user."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import redis.asyncio
from prometheus_client import REGISTRY

from tableforge.realtime.redis_presence import RedisPresence
from tableforge.wiring.backends import shared_redis
from tests.support.private_redis import PrivateRedis

from .conftest import MakePresence, MakeRegistry
from .support import eventually

ROOM = "room-1"


def _kill(registry_task: asyncio.Task[None] | None) -> None:
    """kill -9 as far as Redis can tell: the heartbeat stops and nothing is cleaned up."""
    assert registry_task is not None
    registry_task.cancel()


async def test_first_and_last_socket_of_a_user_across_instances(
    make_registry: MakeRegistry, make_presence: MakePresence, instance_ids: Callable[[str], str]
) -> None:
    a_id, b_id = instance_ids("a"), instance_ids("b")
    await make_registry(a_id)
    await make_registry(b_id)
    a, b = make_presence(a_id), make_presence(b_id)

    assert await a.add(ROOM, "alice", f"{a_id}/c1") is True  # came online
    assert await b.add(ROOM, "alice", f"{b_id}/c2") is False  # already online elsewhere
    assert await a.add(ROOM, "alice", f"{a_id}/c3") is False
    assert await a.add(ROOM, "alice", f"{a_id}/c3") is False  # the same socket again
    assert await b.add(ROOM, "bob", f"{b_id}/c4") is True
    assert await a.online(ROOM) == {"alice", "bob"}
    assert await b.count(ROOM) == 4

    assert await a.remove(ROOM, "alice", f"{a_id}/c1") is False
    assert await a.remove(ROOM, "alice", f"{a_id}/c3") is False
    assert await a.remove(ROOM, "alice", f"{a_id}/c3") is False  # unknown by now
    assert await b.remove(ROOM, "alice", f"{b_id}/c2") is True  # went offline
    assert await a.online(ROOM) == {"bob"}
    assert await a.count(ROOM) == 1
    assert await a.online("another-room") == set()


async def test_a_killed_instance_drops_out_and_a_survivor_announces_its_users_once(
    make_registry: MakeRegistry, make_presence: MakePresence, instance_ids: Callable[[str], str],
    raw: redis.asyncio.Redis, prefix: str,
) -> None:
    a_id, b_id, c_id = instance_ids("a"), instance_ids("b"), instance_ids("c")
    await make_registry(a_id, interval=0.1, ttl=0.5)
    b_registry = await make_registry(b_id, interval=0.1, ttl=0.5)
    await make_registry(c_id, interval=0.1, ttl=0.5)
    a, b, c = make_presence(a_id), make_presence(b_id), make_presence(c_id)

    await a.add(ROOM, "alice", f"{a_id}/1")
    await b.add(ROOM, "alice", f"{b_id}/2")  # alice is also on a: stays online
    await b.add(ROOM, "bob", f"{b_id}/3")  # bob only on b: goes offline
    await b.add(ROOM, "bob", f"{b_id}/4")
    await b.add("room-2", "carol", f"{b_id}/5")
    assert await a.count(ROOM) == 4

    _kill(b_registry._task)

    async def b_gone_from_counts() -> bool:
        return await a.count(ROOM) == 1

    await eventually(b_gone_from_counts, within=5, what="b's sockets to stop counting")
    assert await a.online(ROOM) == {"alice"}
    assert await c.online("room-2") == set()

    # Two survivors prune at once: every offline user is reported exactly once, by one of them.
    found_a, found_c = await asyncio.gather(a.prune_dead_instances(), c.prune_dead_instances())
    assert sorted(found_a + found_c) == [(ROOM, "bob"), ("room-2", "carol")]
    assert await a.prune_dead_instances() == []
    assert not await raw.exists(f"{prefix}presence:idx:{b_id}")
    assert b_id.encode() not in await raw.smembers(f"{prefix}presence:instances")
    assert await raw.hkeys(f"{prefix}presence:{ROOM}") == [f"alice|{a_id}/1".encode()]


async def test_maintain_hands_offline_users_to_the_handler(
    make_registry: MakeRegistry, make_presence: MakePresence, instance_ids: Callable[[str], str]
) -> None:
    a_id, b_id = instance_ids("a"), instance_ids("b")
    a_registry = await make_registry(a_id, interval=0.1, ttl=0.5)
    b_registry = await make_registry(b_id, interval=0.1, ttl=0.5)
    announced: list[tuple[str, str]] = []

    async def announce(users: list[tuple[str, str]]) -> None:
        announced.extend(users)

    a = make_presence(a_id, on_offline=announce)
    a_registry.add_hook(a.maintain)
    b = make_presence(b_id)
    await b.add(ROOM, "bob", f"{b_id}/1")
    _kill(b_registry._task)

    async def announced_bob() -> bool:
        return announced == [(ROOM, "bob")]

    await eventually(announced_bob, within=5, what="bob announced offline")


async def test_a_socket_replacing_a_dead_one_is_not_announced_twice(
    make_registry: MakeRegistry, make_presence: MakePresence, instance_ids: Callable[[str], str]
) -> None:
    a_id, b_id = instance_ids("a"), instance_ids("b")
    await make_registry(a_id, interval=0.1, ttl=0.5)
    b_registry = await make_registry(b_id, interval=0.1, ttl=0.5)
    a, b = make_presence(a_id), make_presence(b_id)
    await b.add(ROOM, "bob", f"{b_id}/1")
    _kill(b_registry._task)

    async def b_dead() -> bool:
        return await a.count(ROOM) == 0

    await eventually(b_dead, within=5, what="b to expire")
    # bob reconnects to a before anyone pruned b: he is online (again), not left.
    assert await a.add(ROOM, "bob", f"{a_id}/2") is True
    assert await a.prune_dead_instances() == []
    assert await a.remove(ROOM, "bob", f"{a_id}/2") is True


async def test_entries_lost_in_redis_are_written_again_from_the_mirror(
    make_registry: MakeRegistry, make_presence: MakePresence, instance_ids: Callable[[str], str],
    raw: redis.asyncio.Redis, prefix: str,
) -> None:
    a_id = instance_ids("a")
    registry = await make_registry(a_id)
    a = make_presence(a_id)
    registry.add_hook(a.maintain)
    await a.add(ROOM, "alice", f"{a_id}/1")
    await a.user_connected("alice")

    # Redis restarted without persistence: our keys are gone.
    lost = [key async for key in raw.scan_iter(match=prefix + "*", count=1000)]
    await raw.unlink(*lost)
    assert await a.online(ROOM) == set()

    assert await registry.heartbeat() is True  # the key had vanished ...
    await a.maintain(revived=True)  # ... so the hook rewrites what we hold
    assert await a.online(ROOM) == {"alice"}
    assert await a.user_instances("alice") == {a_id}


async def test_a_previous_run_under_the_same_id_is_cleared_and_announced(
    make_registry: MakeRegistry, make_presence: MakePresence, instance_ids: Callable[[str], str]
) -> None:
    a_id = instance_ids("a")
    await make_registry(a_id)
    old = make_presence(a_id)
    await old.add(ROOM, "alice", f"{a_id}/1")

    # Restarted with a fixed TABLEFORGE_INSTANCE_ID: its first heartbeat says "revived".
    new = make_presence(a_id)
    assert await new.maintain(revived=True) == [(ROOM, "alice")]
    assert await new.online(ROOM) == set()


async def test_user_instances_follow_connects_disconnects_and_expiry(
    make_registry: MakeRegistry, make_presence: MakePresence, instance_ids: Callable[[str], str]
) -> None:
    a_id, b_id = instance_ids("a"), instance_ids("b")
    await make_registry(a_id)
    await make_registry(b_id)
    a = make_presence(a_id, user_ttl=60)
    b = make_presence(b_id, user_ttl=0.3)

    await a.user_connected("alice")
    await a.user_connected("alice")
    await b.user_connected("alice")
    assert await a.user_instances("alice") == {a_id, b_id}
    assert await a.user_instances("nobody") == set()

    await a.user_disconnected("alice")
    assert await b.user_instances("alice") == {a_id, b_id}  # a still has one socket
    await a.user_disconnected("alice")
    assert await b.user_instances("alice") == {b_id}

    # b stops refreshing (killed): its mark runs out on its own.
    async def expired() -> bool:
        return await a.user_instances("alice") == set()

    await eventually(expired, within=5, what="b's mark to expire")


async def test_without_redis_answers_come_from_this_instance(instance_ids: Callable[[str], str]) -> None:
    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    a = RedisPresence(client, instance_ids("a"))
    assert await a.add(ROOM, "alice", "a/1") is True
    assert await a.add(ROOM, "alice", "a/2") is False
    assert await a.online(ROOM) == {"alice"}
    assert await a.count(ROOM) == 2
    assert await a.remove(ROOM, "alice", "a/1") is False
    assert await a.remove(ROOM, "alice", "a/2") is True
    await a.user_connected("alice")
    assert await a.user_instances("alice") == {a.instance_id}
    assert await a.maintain() == []
    await client.aclose()


async def test_presence_survives_a_redis_restart_without_a_failed_call(tmp_path: Path) -> None:
    """Every pooled connection dies with the server; none may fail a presence call afterwards."""
    server = PrivateRedis(tmp_path)
    server.start()
    client = shared_redis(server.url)
    presence = RedisPresence(client, "i1", prefix=f"tableforge:test-{uuid.uuid4().hex[:8]}:")
    try:
        await asyncio.gather(*(presence.add("room", f"u{i}", f"c{i}") for i in range(20)))  # 20 pooled connections
        before = REGISTRY.get_sample_value("tableforge_presence_fallbacks_total", {"op": "add"}) or 0.0
        server.stop()
        server.start()
        await asyncio.gather(*(presence.add("room", f"v{i}", f"d{i}") for i in range(20)))
        after = REGISTRY.get_sample_value("tableforge_presence_fallbacks_total", {"op": "add"}) or 0.0
        assert after == before, "a presence call failed on a connection opened before the restart"
        assert {f"v{i}" for i in range(20)} <= await presence.online("room")
    finally:
        await client.aclose()
        server.stop()

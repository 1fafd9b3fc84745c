"""RedisBroker between two instances (two broker objects) over the real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlparse

import redis.asyncio

from tableforge.realtime.envelope import unpack
from tableforge.realtime.redis_broker import RedisBroker
from tableforge.realtime.redis_sharing import SHARED_AGAIN, UNSHARED
from tableforge.realtime.redis_subscriber import RECEIVED

from .conftest import MakeBroker
from .support import TcpProxy, event, eventually, wait_until


async def test_an_event_reaches_every_other_subscribed_instance_and_not_its_origin(
    make_broker: MakeBroker, instance_ids: Callable[[str], str]
) -> None:
    """The hub delivers to its own sockets when it publishes: Redis brings our own messages back too
    (pub/sub reaches every subscriber), and the broker drops them by their sender."""
    a_id, b_id = instance_ids("a"), instance_ids("b")
    a, inbox_a = await make_broker(a_id)
    b, inbox_b = await make_broker(b_id)
    await a.subscribe("room-1")
    await b.subscribe("room-1")
    own_before = RECEIVED.labels("own")._value.get()

    for version in range(1, 6):
        await a.publish("room-1", event(version, f"v{version}", sender=f"{a_id}/c1"))
    await a.publish("room-1", event(0, "a change no socket made", sender=f"{a_id}/"))
    await wait_until(lambda: len(inbox_b.rooms) == 6, what="six messages on b")
    assert inbox_b.bodies("room-1") == ["v1", "v2", "v3", "v4", "v5", "a change no socket made"]
    assert unpack(inbox_b.rooms[0][1]).sender == f"{a_id}/c1"

    # Published after a's: Redis sends to a's subscriber in that order, so a's own would come first.
    await b.publish("room-1", event(0, "preview", sender=f"{b_id}/c2"))
    await wait_until(lambda: inbox_a.has("preview"), what="b's preview on a")
    assert inbox_a.bodies("room-1") == ["preview"]
    # They came back, and were dropped: a's six, and b's preview on b.
    await wait_until(lambda: RECEIVED.labels("own")._value.get() - own_before == 7, what="7 own messages dropped")
    assert inbox_b.bodies("room-1")[-1] == "a change no socket made"  # b never got its own preview


async def test_an_instance_hears_only_the_rooms_it_is_subscribed_to(
    make_broker: MakeBroker, instance_ids: Callable[[str], str]
) -> None:
    a, _ = await make_broker(instance_ids("a"))
    b, inbox_b = await make_broker(instance_ids("b"))
    await a.subscribe("room-1")
    await b.subscribe("room-2")
    await b.subscribe("room-3")
    await b.unsubscribe("room-3")

    await a.publish("room-1", event(1, "not for b"))
    await a.publish("room-3", event(1, "b left this room"))
    # Redis delivers to one subscriber in publish order: once the marker is in, anything for
    # room-1 or room-3 would be in too.
    await a.publish("room-2", event(1, "marker"))

    await wait_until(lambda: inbox_b.has("marker"), what="the marker")
    assert inbox_b.rooms == [("room-2", event(1, "marker"))]


async def test_subscribe_and_unsubscribe_apply_in_call_order(
    make_broker: MakeBroker, instance_ids: Callable[[str], str]
) -> None:
    a, inbox_a = await make_broker(instance_ids("a"))
    b, inbox_b = await make_broker(instance_ids("b"))
    await b.subscribe("marker")
    await b.subscribe("stays")
    await b.subscribe("goes")

    # Issued together, without awaiting in between, like a quick leave and rejoin in the hub.
    await asyncio.gather(b.unsubscribe("stays"), b.subscribe("stays"),
                         b.subscribe("goes"), b.unsubscribe("goes"))

    await a.publish("stays", event(1, "kept"))
    await a.publish("goes", event(1, "dropped"))
    await a.publish("marker", event(1, "marker"))
    await wait_until(lambda: inbox_b.has("marker"), what="the marker")
    assert inbox_b.bodies() == ["kept", "marker"]
    assert inbox_a.rooms == []


async def test_control_messages_reach_every_instance_or_just_one(
    make_broker: MakeBroker, instance_ids: Callable[[str], str]
) -> None:
    a, inbox_a = await make_broker(instance_ids("a"))
    b, inbox_b = await make_broker(instance_ids("b"))

    await a.publish_control(b"to everyone")
    await a.publish_control(b"to b only", b.instance_id)
    await b.publish_control(b"to a only", a.instance_id)
    await b.publish_control(b"done")

    await wait_until(lambda: inbox_a.has_control("done") and inbox_b.has_control("done"), what="the last message")
    assert inbox_a.controls == [b"to everyone", b"to a only", b"done"]
    assert inbox_b.controls == [b"to everyone", b"to b only", b"done"]


async def test_stored_events_leave_nothing_in_redis(
    make_broker: MakeBroker, instance_ids: Callable[[str], str], raw: redis.asyncio.Redis, prefix: str
) -> None:
    """History lives in the database: the broker only carries bytes, so Redis keeps no event."""
    a, _ = await make_broker(instance_ids("a"))
    b, inbox_b = await make_broker(instance_ids("b"))
    await b.subscribe("room-1")
    for version in range(1, 201):
        await a.publish("room-1", event(version, f"v{version}"))
    await a.publish("room-1", event(0, "ephemeral: not stored"))
    await wait_until(lambda: len(inbox_b.rooms) == 201, what="every message")
    assert inbox_b.bodies()[:3] == ["v1", "v2", "v3"]
    assert [key async for key in raw.scan_iter(match=f"{prefix}*", count=1000)] == []


async def test_many_concurrent_publishers_lose_nothing(
    make_broker: MakeBroker, instance_ids: Callable[[str], str]
) -> None:
    a, inbox_a = await make_broker(instance_ids("a"), outbox_limit=50, batch_max=16)
    b, inbox_b = await make_broker(instance_ids("b"))
    await a.subscribe("room-1")
    await b.subscribe("room-1")

    # More stored events than the outbox holds: publishers wait for room, none is dropped.
    await asyncio.gather(*(a.publish("room-1", event(v, f"v{v}")) for v in range(1, 501)))

    await wait_until(lambda: len(inbox_b.rooms) == 500, what="500 events on b")
    assert sorted(unpack(data).version for _, data in inbox_b.rooms) == list(range(1, 501))
    await wait_until(lambda: len(inbox_a.rooms) == 500, what="500 events on a")


async def _subscriber_client_id(raw: redis.asyncio.Redis, instance_id: str) -> int:
    for client in await raw.client_list(_type="pubsub"):
        if client.get("name") == f"tableforge-sub:{instance_id}":
            return int(client["id"])
    raise AssertionError(f"no subscriber connection named for {instance_id}")


async def test_a_killed_subscriber_reconnects_resubscribes_and_resets(
    make_broker: MakeBroker, instance_ids: Callable[[str], str], raw: redis.asyncio.Redis
) -> None:
    a, inbox_a = await make_broker(instance_ids("a"))
    b, inbox_b = await make_broker(instance_ids("b"))
    await b.subscribe("room-1")
    await a.subscribe("room-1")
    resets_before = inbox_b.resets
    old_id = await _subscriber_client_id(raw, b.instance_id)

    # CLIENT KILL TYPE pubsub, narrowed to b's subscriber so nobody else on this Redis is hit.
    killed = await raw.execute_command("CLIENT", "KILL", "TYPE", "pubsub", "ID", old_id)
    assert killed == 1

    await wait_until(lambda: inbox_b.resets > resets_before and b.healthy, what="b to resubscribe")
    assert b.reconnects == 1
    assert await _subscriber_client_id(raw, b.instance_id) != old_id

    await a.publish("room-1", event(7, "after the kill"))
    await a.publish_control(b"control after the kill")
    await wait_until(lambda: inbox_b.has("after the kill") and inbox_b.has_control("control after the kill"),
                     what="messages on b after reconnecting")
    assert inbox_a.resets == 1  # only its first subscription



async def test_the_liveness_probe_replaces_a_silently_dead_subscription(
    make_broker: MakeBroker, instance_ids: Callable[[str], str], redis_proxy: TcpProxy, redis_url: str
) -> None:
    a, _ = await make_broker(instance_ids("a"))
    path = urlparse(redis_url).path or "/0"
    b, inbox_b = await make_broker(instance_ids("b"), url=f"redis://127.0.0.1:{redis_proxy.port}{path}",
                                   socket_timeout=0.5, probe_interval=0.3, probe_timeout=0.5)
    await b.subscribe("room-1")
    resets_before = inbox_b.resets

    assert redis_proxy.freeze() >= 1  # b's connections stay open but nothing passes any more
    await a.publish("room-1", event(1, "lost in the frozen connection"))

    await wait_until(lambda: inbox_b.resets > resets_before, within=15, what="the probe to restart b")
    await wait_until(lambda: b.healthy, what="b healthy again")
    await a.publish("room-1", event(2, "through the new connection"))
    await wait_until(lambda: inbox_b.has("through the new connection"), what="b to hear again")
    assert not inbox_b.has("lost in the frozen connection")  # the hub refills it from the database


async def test_a_stored_event_is_not_held_up_by_a_redis_that_stopped_answering(
    make_broker: MakeBroker, instance_ids: Callable[[str], str], redis_proxy: TcpProxy, redis_url: str
) -> None:
    """The event is in the event log before it is published, and an instance that misses it reads it
    back from there: a stalled Redis must not hold up the change's ack (publish waits for room in the
    outbox, not for Redis)."""
    path = urlparse(redis_url).path or "/0"
    # Redis's answers may take up to a minute before the publisher gives up on them.
    a, _ = await make_broker(instance_ids("a"), url=f"redis://127.0.0.1:{redis_proxy.port}{path}",
                             socket_timeout=60, probe_interval=60)
    b, inbox_b = await make_broker(instance_ids("b"))
    await b.subscribe("room-1")
    await a.publish("room-1", event(1, "v1"))
    await wait_until(lambda: inbox_b.has("v1"), what="the first event on b")  # a's publisher is connected
    assert redis_proxy.freeze() >= 2  # its subscriber and its publisher: nothing passes any more
    for version in (2, 3, 4):
        await asyncio.wait_for(a.publish("room-1", event(version, f"v{version}")), 10)
    assert not inbox_b.has("v2")


async def test_without_redis_control_messages_for_this_instance_still_arrive(
    make_broker: MakeBroker, instance_ids: Callable[[str], str]
) -> None:
    # Nothing listens on port 1: Redis is down from the start.
    a, inbox_a = await make_broker(instance_ids("a"), url="redis://127.0.0.1:1/0", start_wait=0.2,
                                   connect_timeout=0.2)
    assert not a.healthy
    await a.subscribe("room-1")  # returns: the subscription is applied when Redis is back
    await a.publish("room-1", event(1, "local move"))
    await a.publish("room-1", event(0, "local preview"))
    await a.publish("room-2", event(1, "no local sockets there"))
    await a.publish_control(b"broadcast")
    await a.publish_control(b"for someone else", "another-instance")
    assert inbox_a.bodies() == []  # room messages: the hub delivered them to its sockets itself
    assert inbox_a.controls == [b"broadcast"]
    assert a.stats()["subscribed"] is False


def _unshared(kind: str) -> float:
    return float(UNSHARED.labels(kind)._value.get())


def _shared_again(reason: str) -> float:
    return float(SHARED_AGAIN.labels(reason)._value.get())


async def _until_unshared(broker: RedisBroker, *rooms: str) -> None:
    """Until `rooms` are the broker's alone. Another broker's start-up hello may share them again
    after the first reply said so: a preview in each (which nobody else hears) asks Redis again."""
    async def unshared() -> bool:
        for room_id in rooms:
            broker.relay(room_id, event(0, "preview", sender=f"{broker.instance_id}/"))
        return bool(broker.stats()["unshared_rooms"] == len(rooms))

    await eventually(unshared, what=f"{rooms} unshared on {broker.instance_id}")


async def test_a_room_no_other_instance_hears_is_not_published_until_one_subscribes(
    make_broker: MakeBroker, instance_ids: Callable[[str], str]
) -> None:
    """PUBLISH says how many subscribers got a message; when that is only us, the room's messages
    stay here until another instance says hello in the room. It then gets the last event kept back
    (and reads the ones before it from the log), and every later one."""
    a_id = instance_ids("a")
    a, _ = await make_broker(a_id)
    b, inbox_b = await make_broker(instance_ids("b"))
    await a.subscribe("room-1")  # its hello reaches nobody else: the room becomes a's alone
    await _until_unshared(a, "room-1")
    stored, ephemeral, hellos = _unshared("stored"), _unshared("ephemeral"), _shared_again("hello")

    for version in (1, 2, 3):
        await a.publish("room-1", event(version, f"v{version}", sender=f"{a_id}/c1"))
    a.relay("room-1", event(0, "a preview nobody else could see", sender=f"{a_id}/c1"))
    assert (_unshared("stored") - stored, _unshared("ephemeral") - ephemeral) == (3, 1)

    await b.subscribe("room-1")
    # b's hello is on its way: a still has the room to itself, and keeps this one back too.
    await a.publish("room-1", event(4, "v4", sender=f"{a_id}/c1"))
    await wait_until(lambda: inbox_b.has("v4"), what="the kept event, once b said hello")
    assert _shared_again("hello") - hellos == 1 and a.stats()["unshared_rooms"] == 0
    await a.publish("room-1", event(5, "v5", sender=f"{a_id}/c1"))
    await wait_until(lambda: inbox_b.has("v5"), what="the next event")
    assert inbox_b.bodies("room-1") == ["v4", "v5"]  # b reads v1..v3 from the log (the hub's gap fill)
    assert _unshared("stored") - stored == 4

    # b leaves: a's next publish reaches only a, and the room is a's alone again.
    await b.unsubscribe("room-1")
    await _until_unshared(a, "room-1")


async def test_a_kept_event_goes_out_when_the_room_is_left_or_the_session_lost(
    make_broker: MakeBroker, instance_ids: Callable[[str], str], raw: redis.asyncio.Redis, prefix: str
) -> None:
    """Without a subscription, a hello would not reach us: leaving the room, or losing the subscriber's
    session, publishes what was kept back. A listener that says no hello sees it."""
    a_id = instance_ids("a")
    a, inbox_a = await make_broker(a_id)
    await a.subscribe("room-1")
    await a.subscribe("room-2")
    await _until_unshared(a, "room-1", "room-2")
    await a.publish("room-1", event(1, "kept in room-1", sender=f"{a_id}/c1"))
    await a.publish("room-2", event(1, "kept in room-2", sender=f"{a_id}/c1"))
    listener = raw.pubsub()
    await listener.subscribe(f"{prefix}room:room-1", f"{prefix}room:room-2")
    heard: list[bytes] = []

    async def hear(count: int) -> None:
        while len(heard) < count:
            message = await listener.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                heard.append(message["data"])

    try:
        await a.unsubscribe("room-1")
        await asyncio.wait_for(hear(1), 10)
        assert [unpack(data).body for data in heard] == [b"kept in room-1"]

        killed = await raw.execute_command("CLIENT", "KILL", "TYPE", "pubsub", "ID",
                                           await _subscriber_client_id(raw, a_id))
        assert killed == 1
        await asyncio.wait_for(hear(2), 10)
        assert unpack(heard[1]).body == b"kept in room-2"
        await wait_until(lambda: inbox_a.resets == 2, what="a subscribed again")
    finally:
        await listener.aclose()


async def test_an_instance_that_subscribed_again_gets_every_room_shared_again(
    make_broker: MakeBroker, instance_ids: Callable[[str], str], raw: redis.asyncio.Redis
) -> None:
    """A new session subscribes every room at once, without a hello each: one hello on the control
    channel makes every other instance share all its rooms again."""
    a_id, b_id = instance_ids("a"), instance_ids("b")
    a, _ = await make_broker(a_id)
    _, inbox_b = await make_broker(b_id)
    await a.subscribe("room-1")
    await _until_unshared(a, "room-1")
    await a.publish("room-1", event(1, "kept", sender=f"{a_id}/c1"))
    hellos = _shared_again("hello")
    # b was in no room; it reconnects and says hello to everyone
    await raw.execute_command("CLIENT", "KILL", "TYPE", "pubsub", "ID", await _subscriber_client_id(raw, b_id))
    await wait_until(lambda: _shared_again("hello") - hellos == 1, what="a to share room-1 again")
    assert a.stats()["unshared_rooms"] in (0, 1)  # its republished event may make it unshared again at once
    assert inbox_b.rooms == []  # b is not in room-1: what a republished does not reach it


async def test_a_room_message_from_an_instance_that_says_no_hello_shares_the_room_again(
    make_broker: MakeBroker, instance_ids: Callable[[str], str], raw: redis.asyncio.Redis, prefix: str
) -> None:
    """An older instance (a rolling upgrade) subscribes without a hello; its first event in the room
    (a player.joined) is enough for the room to be shared again, kept event first."""
    a_id = instance_ids("a")
    a, inbox_a = await make_broker(a_id)
    await a.subscribe("room-1")
    await _until_unshared(a, "room-1")
    await a.publish("room-1", event(1, "kept", sender=f"{a_id}/c1"))
    older = raw.pubsub()
    await older.subscribe(f"{prefix}room:room-1")  # no hello
    heard = _shared_again("heard")
    try:
        await raw.publish(f"{prefix}room:room-1", event(2, "player.joined", sender="older/c9"))
        await wait_until(lambda: inbox_a.has("player.joined"), what="the older instance's event on a")
        assert _shared_again("heard") - heard == 1 and a.stats()["unshared_rooms"] == 0
        await a.publish("room-1", event(3, "shared", sender=f"{a_id}/c1"))
        bodies: list[bytes] = []
        async with asyncio.timeout(10):
            while b"shared" not in bodies:
                message = await older.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    bodies.append(unpack(message["data"]).body)
        assert bodies == [b"player.joined", b"kept", b"shared"]  # its own event comes back to it too
    finally:
        await older.aclose()

"""The hub's ordering, deterministically: a scripted broker (the test decides what arrives, and when)
and an in-memory event log stand in for Redis and the database, so every sequence is exact.

What a player must see, whatever the broker does: every stored version of the room once, in order;
or, when a hole is too big to replay, a `room.resync` that makes the client rejoin with `since`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from tests.support.waiting import wait_until

from tableforge.domain.audience import Logged, View
from tableforge.realtime.broker import Broker
from tableforge.realtime.connection import Connection
from tableforge.realtime.envelope import pack
from tableforge.realtime.hub import Hub

ROOM = "room-1"


class ScriptedBroker(Broker):
    """Delivers nothing by itself: the test hands messages to the hub in the order it wants."""

    def __init__(self) -> None:
        super().__init__()
        self.up = True
        self.controls: list[dict[str, Any]] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def subscribe(self, room_id: str) -> None:
        return None

    async def unsubscribe(self, room_id: str) -> None:
        return None

    async def publish(self, room_id: str, data: bytes) -> None:
        return None

    def relay(self, room_id: str, data: bytes) -> None:
        return None

    async def publish_control(self, data: bytes, instance_id: str | None = None) -> None:
        self.controls.append(orjson.loads(data))

    @property
    def healthy(self) -> bool:
        return self.up


class EventLog:
    """The stored history: version -> body, like `room_events`, with a switch to make it fail."""

    def __init__(self) -> None:
        self.events: dict[int, str] = {}
        self.down = False
        self.reads = 0

    def append(self, count: int = 1) -> list[int]:
        added = []
        for _ in range(count):
            version = max(self.events, default=0) + 1
            self.events[version] = orjson.dumps({"type": "token.moved", "room_id": ROOM, "version": version,
                                                 "ts": 1.0}).decode()
            added.append(version)
        return added

    def prune(self, upto: int) -> None:
        for version in [v for v in self.events if v <= upto]:
            del self.events[version]

    async def versions(self, room_ids: list[str]) -> dict[str, int]:
        if self.down:
            raise ConnectionError("database down")
        return {room_id: max(self.events, default=0) for room_id in room_ids}

    async def history(self, room_id: str, after: int, upto: int) -> list[Logged]:
        self.reads += 1
        if self.down:
            raise ConnectionError("database down")
        return [Logged(v, body) for v, body in sorted(self.events.items()) if after < v <= upto]

    def envelope(self, version: int, sender: str = "") -> bytes:
        return pack(version, 1.0, sender, self.events[version].encode())


OPEN: list[Connection] = []


class Client:
    """A socket as its player sees it: the frames, decoded, in the order they were written."""

    def __init__(self, conn_id: str, max_queue: int = 512, reading: bool = True) -> None:
        self.frames: list[dict[str, Any]] = []

        async def send(text: str) -> None:
            self.frames.append(orjson.loads(text))

        async def close(code: int, reason: str) -> None:
            self.frames.append({"type": "closed", "code": code})

        self.conn = Connection(conn_id, f"user-{conn_id}", conn_id, send, close, max_queue)
        OPEN.append(self.conn)
        if reading:
            self.conn.start()

    def versions(self) -> list[int]:
        return [f["version"] for f in self.frames if f.get("type") == "token.moved"]

    def resyncs(self) -> list[int]:
        return [f["version"] for f in self.frames if f.get("type") == "room.resync"]


@pytest.fixture(autouse=True)
async def _stop_writers() -> AsyncIterator[None]:
    yield
    while OPEN:
        await OPEN.pop().stop()


@pytest.fixture
def log() -> EventLog:
    return EventLog()


@pytest.fixture
def broker() -> ScriptedBroker:
    return ScriptedBroker()


def make_hub(broker: ScriptedBroker, log: EventLog, **options: Any) -> Hub:
    options = {"gap_wait": 0.0, "poll_interval": 3600.0, **options}
    return Hub(broker, "i1", versions_loader=log.versions, history_loader=log.history, **options)


@pytest.fixture
async def hub(broker: ScriptedBroker, log: EventLog) -> AsyncIterator[Hub]:
    hub = make_hub(broker, log)
    yield hub
    await hub.close()


async def joined(hub: Hub, client: Client, cursor: int | None = None) -> Client:
    await hub.attach(client.conn, ROOM, View("player", None, client.conn.user_id))
    current = max(0, hub.rooms[ROOM].expected - 1)
    hub.activate(client.conn, ROOM, current if cursor is None else cursor, '{"type":"ack"}')
    return client


async def test_reordered_events_are_delivered_in_version_order(broker: ScriptedBroker, log: EventLog) -> None:
    hub = make_hub(broker, log, gap_wait=3600.0)  # the broker, not the log, brings the missing one
    client = await joined(hub, Client("a"))
    log.append(3)
    for version in (2, 3, 1):
        hub.on_room_message(ROOM, log.envelope(version))
    await wait_until(lambda: client.versions() == [1, 2, 3], what="1, 2, 3 in order")
    assert log.reads == 0
    await hub.close()


async def test_a_version_that_never_comes_is_read_from_the_log(hub: Hub, log: EventLog) -> None:
    client = await joined(hub, Client("a"))
    log.append(3)
    hub.on_room_message(ROOM, log.envelope(1))
    hub.on_room_message(ROOM, log.envelope(3))  # 2 was lost on the way
    await wait_until(lambda: client.versions() == [1, 2, 3], what="the gap filled")


async def test_broker_reset_then_a_new_gap_is_still_filled(hub: Hub, log: EventLog, broker: ScriptedBroker) -> None:
    """The issue-16 sequence: events held while the broker was away, a reset that catches up to the
    latest version, then a fresh gap. The old hub left the held events in its buffer and computed the
    next fill from them, so it never delivered again."""
    log.append(10)
    client = await joined(hub, Client("a"))
    assert hub.rooms[ROOM].expected == 11
    log.append(10)  # 11..20 stored while the broker was down
    broker.up = False
    for version in (12, 15, 18):  # this instance's own events come back locally, with holes
        hub.on_room_message(ROOM, log.envelope(version))
    broker.up = True
    hub.on_broker_reset()
    await wait_until(lambda: client.versions()[-1:] == [20], what="caught up after the reset")
    log.append(3)  # 21..23: 22 never arrives through the broker
    hub.on_room_message(ROOM, log.envelope(21))
    hub.on_room_message(ROOM, log.envelope(23))
    await wait_until(lambda: client.versions()[-1:] == [23], what="the new gap filled")
    assert client.versions() == list(range(11, 24))
    assert hub.rooms[ROOM].buffer == {}
    assert broker.controls == [{"kind": "hub.check_rooms", "from": "i1"}], "the other instances are asked to check"


async def test_another_instance_asking_for_a_check_brings_what_it_published_while_cut_off(
        hub: Hub, log: EventLog) -> None:
    client = await joined(hub, Client("a"))
    log.append(4)  # stored by an instance whose publishes never reached Redis
    hub.on_control_message(orjson.dumps({"kind": "hub.check_rooms", "from": "i2"}))
    await wait_until(lambda: client.versions() == [1, 2, 3, 4], what="the other instance's events")


async def test_the_sender_gets_no_copy_of_its_own_event(hub: Hub, log: EventLog) -> None:
    sender, other = await joined(hub, Client("a")), await joined(hub, Client("b"))
    log.append(2)
    hub.on_room_message(ROOM, log.envelope(1, sender=hub.sender_tag(sender.conn)))
    hub.on_room_message(ROOM, log.envelope(2))
    await wait_until(lambda: other.versions() == [1, 2], what="the other socket's events")
    await wait_until(lambda: sender.versions() == [2], what="the sender's")


async def test_a_socket_joining_mid_stream_gets_the_ack_then_only_newer_events(hub: Hub, log: EventLog) -> None:
    log.append(2)
    early = await joined(hub, Client("a"))
    late = Client("b")
    await hub.attach(late.conn, ROOM, View("player", None, late.conn.user_id))  # pending: its snapshot is being read
    log.append(3)
    for version in (3, 4, 5):
        hub.on_room_message(ROOM, log.envelope(version))
    hub.activate(late.conn, ROOM, 4, '{"type":"ack","version":4}')  # the snapshot already covers 3 and 4
    await wait_until(lambda: late.frames and late.versions() == [5], what="only v5 after the ack")
    assert late.frames[0] == {"type": "ack", "version": 4}
    assert early.versions() == [3, 4, 5]


async def test_a_hole_too_big_to_replay_is_one_resync_not_a_flood(hub: Hub, log: EventLog) -> None:
    client = await joined(hub, Client("a"))
    log.append(2000)  # far more than half a send queue (512)
    hub.on_broker_reset()
    await wait_until(lambda: client.resyncs() == [2000], what="one room.resync")
    log.append(1)
    hub.on_room_message(ROOM, log.envelope(2001))
    await wait_until(lambda: client.versions() == [2001], what="live events go on")
    assert not client.conn.closed


async def test_history_already_pruned_is_a_resync_then_the_rest(hub: Hub, log: EventLog) -> None:
    client = await joined(hub, Client("a"))
    log.append(8)
    log.prune(5)
    hub.on_room_message(ROOM, log.envelope(8))
    await wait_until(lambda: client.versions() == [6, 7, 8], what="the events still in the log")
    assert client.resyncs() == [5]
    assert client.frames.index({"type": "room.resync", "room_id": ROOM, "version": 5}) < 1 + client.frames.index(
        next(f for f in client.frames if f.get("version") == 6))


async def test_a_socket_that_cannot_take_the_catch_up_is_told_to_resync_not_closed(hub: Hub, log: EventLog) -> None:
    slow = await joined(hub, Client("slow", max_queue=512, reading=False))
    fast = await joined(hub, Client("fast"))
    for _ in range(400):  # the slow reader already has 400 frames waiting
        slow.conn.send('{"type":"pointer"}')
    log.append(100)
    hub.on_broker_reset()
    await wait_until(lambda: fast.versions()[-1:] == [100], what="the fast socket caught up")
    assert not slow.conn.closed
    assert slow.conn.queue_depth == 1 + 400 + 1  # the join ack, the backlog, one room.resync: not 100 events


async def test_while_the_broker_is_down_the_log_is_polled(broker: ScriptedBroker, log: EventLog) -> None:
    hub = make_hub(broker, log, poll_interval=0.01)
    hub.start()
    client = await joined(hub, Client("a"))
    broker.up = False
    log.append(5)  # stored by other instances: nothing arrives through the broker
    await wait_until(lambda: client.versions() == [1, 2, 3, 4, 5], what="events read from the log")
    await hub.close()


async def test_a_room_that_cannot_catch_up_is_reported_then_recovers(broker: ScriptedBroker, log: EventLog) -> None:
    hub = make_hub(broker, log, poll_interval=0.01, stall_after=0.05)
    hub.start()
    client = await joined(hub, Client("a"))
    log.append(3)
    log.down = True
    hub.on_room_message(ROOM, log.envelope(3))
    await wait_until(lambda: hub.health()["stalled_rooms"] == 1, what="the room reported as stalled")
    log.down = False
    await wait_until(lambda: client.versions() == [1, 2, 3], what="recovered by itself")
    await wait_until(lambda: hub.health() == {"stalled_rooms": 0, "behind_rooms": 0}, what="health clears")
    await hub.close()


async def test_a_full_reorder_buffer_loses_nothing(broker: ScriptedBroker, log: EventLog) -> None:
    hub = make_hub(broker, log, gap_wait=3600.0, reorder_limit=4)
    client = await joined(hub, Client("a"))
    log.append(10)
    for version in range(2, 11):  # 9 early events into a buffer of 4
        hub.on_room_message(ROOM, log.envelope(version))
    hub.on_room_message(ROOM, log.envelope(1))
    hub.check_rooms()  # what the watcher does for a room behind for too long
    await wait_until(lambda: client.versions() == list(range(1, 11)), what="all ten, in order")
    await hub.close()


async def test_the_sender_gets_no_copy_of_its_own_event_read_from_the_log(hub: Hub, log: EventLog) -> None:
    """The loadtest's duplicate: a socket's move is v1 (its ack says 1); another instance's v2 comes
    through the broker before this instance's own v1 comes back, the gap wait runs out and v1 is read
    from the log, which does not keep the sender. The sender must still get only v2."""
    sender, other = await joined(hub, Client("a")), await joined(hub, Client("b"))
    log.append(2)
    await hub.publish(ROOM, 1, 1.0, sender.conn, log.events[1].encode())  # its publish is slow to come back
    hub.on_room_message(ROOM, log.envelope(2))  # another instance's later event arrives first
    await wait_until(lambda: other.versions() == [1, 2], what="the other socket's events, v1 from the log")
    await wait_until(lambda: sender.versions()[-1:] == [2], what="the sender's v2")
    hub.on_room_message(ROOM, log.envelope(1, sender=hub.sender_tag(sender.conn)))  # late: already delivered
    log.append(1)
    hub.on_room_message(ROOM, log.envelope(3))
    await wait_until(lambda: sender.versions()[-1:] == [3], what="the sender's v3")
    assert sender.versions() == [2, 3]
    assert other.versions() == [1, 2, 3]
    assert hub.rooms[ROOM].authors == {}

"""Rooms no other instance listens to: the Redis broker stops publishing their messages.

When one instance has all of a room's sockets (one instance, or a balancer with room affinity),
everything it publishes for the room only comes back to it to be dropped: the outbox's pipeline,
Redis, and the subscriber's read and parse, for nothing. PUBLISH answers with the number of
subscribers that got the message; 1 while this instance is surely subscribed to the room
(`RedisSubscriber.confirmed`) means nobody else is. From then on the room is *unshared*: its
messages stay here, and the last stored one is kept.

An instance that subscribes to a room says so in the room's channel (a hello, sent once Redis has
confirmed the subscription). An instance that has the room unshared then shares it again and
publishes the stored envelope it kept last: the newcomer reads everything up to that version from
the event log (the hub's gap fill), so nothing kept back while the hello was on its way is lost.
Leaving the room (the last local socket went) and losing the subscriber's session publish the kept
envelopes too, since a hello may not reach us any more. And a room message from another instance
shares the room again: an instance that says no hello (an older version, during a rolling upgrade)
is heard at its first event in the room (usually its player's `player.joined`).

A reply tells how many subscribers Redis saw when it ran the PUBLISH. It is believed only when the
subscriber's epoch did not change between sending the PUBLISH and reading its reply: a hello, a
subscription confirmed or dropped, or a session lost in between could have made it stale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from prometheus_client import Counter, Gauge

from tableforge.observability.metrics import Children
from tableforge.realtime.envelope import peek_version
from tableforge.realtime.redis_subscriber import RedisSubscriber

HELLO_MARK: Final = b"\x00tableforge-hello:"

UNSHARED = Counter("tableforge_broker_unshared_total",
                   "Room messages not published because no other instance is subscribed to the room, by kind",
                   ["kind"])
UNSHARED_ROOMS = Gauge("tableforge_broker_unshared_rooms", "Rooms whose messages stay on this instance",
                       multiprocess_mode="livesum")
SHARED_AGAIN = Counter("tableforge_broker_shared_again_total",
                       "Unshared rooms published again, by reason: hello (another instance subscribed), heard (another "
                       "instance's message in the room), left, session (the subscriber's session ended)", ["reason"])
UNSHARED_BY_KIND = Children(UNSHARED)


def hello(instance_id: str) -> bytes:
    return HELLO_MARK + instance_id.encode()


def hello_sender(data: bytes) -> str | None:
    """The instance id of a hello, None for anything else (a room envelope starts with a digit)."""
    return data[len(HELLO_MARK):].decode(errors="replace") if data.startswith(HELLO_MARK) else None


class Sharing:
    """Which rooms are unshared, and the last stored envelope kept back in each (None: none yet).
    `republish(room_id, data)` sends a kept envelope; it must not block."""

    __slots__ = ("_kept", "_republish", "_subscriber")

    def __init__(self, subscriber: RedisSubscriber, republish: Callable[[str, bytes], None]) -> None:
        self._subscriber = subscriber
        self._republish = republish
        self._kept: dict[str, bytes | None] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def __contains__(self, room_id: str) -> bool:
        return room_id in self._kept

    def keep(self, room_id: str, data: bytes) -> bool:
        """True if the room is unshared: the message stays here (a stored one is kept)."""
        if room_id not in self._kept:
            return False
        if peek_version(data) > 0:
            self._kept[room_id] = data
            UNSHARED_BY_KIND["stored"].inc()
        else:
            UNSHARED_BY_KIND["ephemeral"].inc()
        return True

    @property
    def epoch(self) -> int:
        return self._subscriber.epoch

    def replies(self, rooms: Sequence[str | None], counts: Sequence[object], epoch: int) -> None:
        """The PUBLISH replies of one pipeline sent in `epoch`: a room whose message reached only us
        becomes unshared."""
        subscriber = self._subscriber
        if epoch != subscriber.epoch:
            return
        for room_id, count in zip(rooms, counts, strict=True):
            if (count == 1 and room_id is not None and room_id not in self._kept
                    and room_id in subscriber.confirmed and room_id in subscriber.rooms):
                self._kept[room_id] = None
                UNSHARED_ROOMS.inc()

    def share(self, room_id: str, reason: str) -> None:
        """Publish the room's messages again, starting with the kept one."""
        if room_id not in self._kept:
            return
        kept = self._kept.pop(room_id)
        UNSHARED_ROOMS.dec()
        SHARED_AGAIN.labels(reason).inc()
        if kept is not None:
            self._republish(room_id, kept)

    def share_all(self, reason: str) -> None:
        for room_id in list(self._kept):
            self.share(room_id, reason)

"""What travels through the broker: a tiny header and the event exactly as clients receive it.

`b"<version>|<ts_ms>|<sender>|<audience>|<n>|" + variants + body`. The header lets every instance
order, time and route an event without decoding its JSON; `version` 0 marks an ephemeral message.
`audience` is the main body's selector (empty: everyone) and `variants` the `n` bytes of the other
bodies (domain/audience.py, the same text the event log stores), so every instance filters an event
exactly as recovery does. This module is the only place that packs or parses it.
"""

from __future__ import annotations

from typing import NamedTuple

from tableforge.domain.audience import Routing, routing_of


class Envelope(NamedTuple):
    version: int
    ts_ms: float
    sender: str
    body: bytes
    audience: str | None = None  # None: everyone
    variants: bytes = b""

    @property
    def routing(self) -> Routing:
        return routing_of(self.audience, self.variants)


EVERYONE = Routing()


def pack(version: int, ts_ms: float, sender: str, body: bytes, routing: Routing = EVERYONE) -> bytes:
    variants = routing.encoded_variants()
    extra = variants.encode() if variants else b""
    audience = routing.audience.encode() if routing.audience is not None else b""
    return b"%d|%.3f|%s|%s|%d|" % (version, ts_ms, sender.encode(), audience, len(extra)) + extra + body


_new = tuple.__new__  # an Envelope without NamedTuple's keyword handling: this runs for every event


def unpack(data: bytes) -> Envelope:
    version, ts, sender, audience, size, rest = data.split(b"|", 5)
    if size == b"0":
        return _new(Envelope, (int(version), float(ts), sender.decode(), rest, audience.decode() if audience else None,
                               b""))
    n = int(size)
    return _new(Envelope, (int(version), float(ts), sender.decode(), rest[n:], audience.decode() if audience else None,
                           rest[:n]))


def sent_from(data: bytes, instance_prefix: bytes) -> bool:
    """Whether the envelope's sender starts with `instance_prefix` (`b"<instance id>/"`), without
    unpacking: the header's third field."""
    first = data.find(b"|", 0, 24)
    second = data.find(b"|", first + 1, first + 32) if first >= 0 else -1
    return second >= 0 and data.startswith(instance_prefix, second + 1)


def peek_version(data: bytes) -> int:
    """The version without unpacking (0 for ephemeral, and for anything that is not an envelope)."""
    end = data.find(b"|", 0, 24)
    if end <= 0:
        return 0
    try:
        return int(data[:end])
    except ValueError:
        return 0


def peek_ts(data: bytes) -> float | None:
    """The timestamp without unpacking, or None for anything that is not an envelope."""
    first = data.find(b"|", 0, 24)
    second = data.find(b"|", first + 1, first + 32) if first >= 0 else -1
    if second < 0:
        return None
    try:
        return float(data[first + 1 : second])
    except ValueError:
        return None

"""What travels through the broker: a tiny header and the event exactly as clients receive it.

`b"<version>|<ts_ms>|<sender>|" + body`. The header lets every instance order, time and
route an event without decoding its JSON; `version` 0 marks an ephemeral message. This module is
the only place that packs or parses it.
"""

from __future__ import annotations

from typing import NamedTuple


class Envelope(NamedTuple):
    version: int
    ts_ms: float
    sender: str
    body: bytes


def pack(version: int, ts_ms: float, sender: str, body: bytes) -> bytes:
    return b"%d|%.3f|%s|" % (version, ts_ms, sender.encode()) + body


def unpack(data: bytes) -> Envelope:
    version, ts, sender, body = data.split(b"|", 3)
    return Envelope(int(version), float(ts), sender.decode(), body)


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

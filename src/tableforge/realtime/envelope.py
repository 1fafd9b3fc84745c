"""What travels through the broker: a tiny header and the event exactly as clients receive it.

`b"<version>|<ts_ms>|<sender>|" + body`. The header lets every instance order, time and
route an event without decoding its JSON; `version` 0 marks an ephemeral message.
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

"""What a load test is made of: its configuration, the rooms and the simulated players' state,
and the fixed parts of the mix (dice notations, search words, the action weights)."""

from __future__ import annotations

import asyncio
import random
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection

PASSWORD = "loadtest-pass-123"
LATE_KEPT = 256  # timed-out request ids kept per player, for their late acks
SEARCH_WORDS = ("dragon", "space", "horror", "fantasy", "dice", "quest", "d20", "mystery", "", "")
DICE = ("1d20", "2d6+3", "4d6kh3", "1d100", "3d8-1", "1d20+5")
MIX: tuple[tuple[str, int], ...] = (
    ("drag", 30), ("chat", 12), ("dice", 10), ("snapshot", 10), ("catalog", 12), ("asset", 10),
    ("players", 6), ("reconnect", 3),
)


@dataclass
class LoadConfig:
    urls: list[str]
    users: int
    rooms: int
    duration: float
    ramp_up: float
    seed: int = 1
    think_time: float = 2.0
    admin_token: str | None = None
    setup_timeout: float = 600.0
    processes: int = 1  # processes that run the players (rooms are split between them, never a room)
    pin_client: set[int] | None = None  # CPUs for the load generator
    pin_server: set[int] | None = None  # CPUs for the local instances, for the run
    batch: bool = True  # announce `batch` in join: the server may send queued frames as one message

    def ws_url(self, base: str) -> str:
        return base.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"


class SetupError(Exception):
    """The run could not be set up (registration, rooms, uploads)."""


def tiny_png(seed: int, size: int = 24) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(((x * 7 + seed) % 256, (seed * 31) % 256, 160)) * size for x in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@dataclass
class Room:
    index: int
    id: str = ""
    invite_code: str = ""
    asset_id: str = ""
    asset_url: str = ""
    final_version: int = 0


@dataclass
class Player:
    index: int
    username: str
    room: Room
    url: str
    rng: random.Random
    token: str = ""
    user_id: str = ""
    ws: ClientConnection | None = None
    reader: asyncio.Task[None] | None = None
    token_id: str = ""
    first_version: int | None = None
    versions: list[int] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)  # versions its own acks carried (the sender gets no event of them)
    covered: list[tuple[int, int]] = field(default_factory=list)  # (after, upto] ranges resynced by a snapshot
    futures: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    # requests whose ack did not come within the client's wait: id -> kind. An ack that comes later
    # still carries a version this player must not be counted as missing (bounded: LATE_KEPT).
    late: dict[int, str] = field(default_factory=dict)
    next_id: int = 0
    x: float = 0.0
    etag: str = ""
    closing: bool = False
    online: bool = False
    online_at_end: bool = True  # still joined when play ended (set before the sockets close)
    resync: bool = False  # the server sent room.resync: rejoin with `since` before the next action

    @property
    def last_version(self) -> int:
        """The highest version seen (what the integrity check reads up to)."""
        return max([*self.versions, self.first_version or 0, *(b for _, b in self.covered)])

    @property
    def applied(self) -> int:
        """The highest version with every version before it (since the first join) seen: what a
        client has applied, and what it rejoins with. After a gap (or a room.resync) the highest
        version seen is past events it never got; rejoining from there would skip them for good."""
        seen = set(self.versions)
        for after, upto in self.covered:
            seen.update(range(after + 1, upto + 1))
        v = self.first_version or 0
        while v + 1 in seen:
            v += 1
        return v


def integrity(players: list[Player]) -> dict[str, int]:
    """Lost and duplicate room versions: every socket must have seen every version from its first
    join to its room's final version (events, its own acks, `since` replays, snapshot resyncs).

    A player that was offline when play ended (its last reconnect failed: a client-side timeout on
    a saturated machine) could not see what came after: it is checked up to the last version it saw,
    and counted in `offline_at_end` with the versions left unchecked."""
    lost = dup = own = checked = offline = unchecked = 0
    for p in players:
        if p.first_version is None:
            continue
        seen: set[int] = set()
        for v in p.versions:
            if v in seen:
                dup += 1
                own += v in p.acked  # its own change came back as an event too (a server fault)
            seen.add(v)
        for after, upto in p.covered:
            seen.update(range(after + 1, upto + 1))
        final = p.room.final_version
        if not p.online_at_end:
            offline += 1
            unchecked += max(0, final - p.last_version)
            final = min(final, p.last_version)
        expected = range(p.first_version + 1, final + 1)
        checked += len(expected)
        lost += sum(1 for v in expected if v not in seen)
    return {"lost": lost, "duplicates": dup, "duplicates_of_own_acks": own, "versions_checked": checked,
            "offline_at_end": offline, "versions_not_checked": unchecked}

"""Helpers for the scale-out tests: recording handlers and envelopes; waiting and the TCP proxy
come from tests.support."""

from __future__ import annotations

from dataclasses import dataclass, field

from tableforge.realtime.broker import Broker
from tableforge.realtime.envelope import pack, unpack
from tests.support.proxy import TcpProxy
from tests.support.waiting import eventually, wait_until

__all__ = ["Inbox", "TcpProxy", "event", "eventually", "wait_until"]


def event(version: int, text: str, sender: str = "") -> bytes:
    """A broker envelope as the hub packs it (version 0: ephemeral)."""
    return pack(version, 1_700_000_000_000.0, sender, text.encode())


@dataclass
class Inbox:
    """What one broker's handlers received, in arrival order."""

    rooms: list[tuple[str, bytes]] = field(default_factory=list)
    controls: list[bytes] = field(default_factory=list)
    resets: int = 0

    def attach(self, broker: Broker) -> None:
        broker.set_handlers(self._room, self.controls.append, self._reset)

    def _room(self, room_id: str, data: bytes) -> None:
        self.rooms.append((room_id, data))

    def _reset(self) -> None:
        self.resets += 1

    def bodies(self, room_id: str | None = None) -> list[str]:
        return [unpack(data).body.decode() for room, data in self.rooms if room_id is None or room == room_id]

    def has(self, text: str) -> bool:
        return text in self.bodies()

    def has_control(self, text: str) -> bool:
        return text.encode() in self.controls

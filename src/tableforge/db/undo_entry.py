"""What undoing one stored token change needs, kept with its event (`room_events.undo`, JSON text).

Written by the change itself (db/board_log.py, and the one-statement move in db/pg_event_log.py,
which builds the same JSON in SQL), read by db/undo_log.py. Never sent to clients.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson


class Entry(NamedTuple):
    """`etype`: the change's event type; `version`: the token version the change produced (a
    removal: the version before it + 1, the version the token comes back with), moved on when a
    later change of the same author is undone (db/undo_log.py); `base`: the version the change
    started from (fixed: it tells which earlier entry the change directly followed); `prior`: the values
    the inverse restores (a move: x, y; an update: the fields it set; a bar: key, value, max;
    conditions: before, after; a removal: the whole row; an addition: nothing)."""

    etype: str
    token_id: str
    version: int
    prior: dict[str, Any]
    base: int

    def encode(self) -> str:
        return orjson.dumps({"type": self.etype, "token_id": self.token_id, "v": self.version, "b": self.base,
                             "prior": self.prior}, default=str).decode()

    @classmethod
    def decode(cls, text: str) -> Entry:
        raw = orjson.loads(text)
        return cls(str(raw["type"]), str(raw["token_id"]), int(raw["v"]), dict(raw.get("prior") or {}),
                   int(raw["b"]))

    def at(self, version: int) -> Entry:
        return self._replace(version=version)

    @classmethod
    def of(cls, etype: str, token_id: str, version: int, prior: dict[str, Any]) -> Entry:
        """A new entry: the change raised the token's version by one."""
        return cls(etype, token_id, version, prior, version - 1)

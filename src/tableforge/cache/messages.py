"""The invalidation message that travels between instances (a leaf module: it imports nothing
of the cache, so every cache module can name the type without an import loop)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

MAX_KEYS_PER_MESSAGE: Final = 500


@dataclass(frozen=True, slots=True)
class Invalidation:
    sender: str
    keys: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    flush: bool = False

    @property
    def type(self) -> str:
        """The metrics label: what this message invalidates."""
        if self.flush:
            return "flush"
        if self.patterns:
            return "pattern"
        if self.tags:
            return "generation"
        return "keys"

    def encode(self) -> bytes:
        body: dict[str, Any] = {"i": self.sender}
        if self.keys:
            body["k"] = self.keys
        if self.patterns:
            body["p"] = self.patterns
        if self.tags:
            body["g"] = self.tags
        if self.flush:
            body["f"] = True
        return orjson.dumps(body)

    @classmethod
    def decode(cls, data: bytes) -> Invalidation | None:
        """The message, or None if it is not one of ours (never raises on bad input)."""
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(body, dict) or not isinstance(body.get("i"), str):
            return None
        fields: dict[str, tuple[str, ...]] = {}
        for short, name in (("k", "keys"), ("p", "patterns"), ("g", "tags")):
            items = body.get(short, [])
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                return None
            fields[name] = tuple(items)
        return cls(body["i"], flush=body.get("f") is True, **fields)

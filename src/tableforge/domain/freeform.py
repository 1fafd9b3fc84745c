"""Limits for free-form JSON documents (a game system's `template`).

A free-form document is stored as JSON on both backends, cached (msgpack/orjson) and sent to
browsers, so it must be something all of them handle alike: integers within the range a
JavaScript client reads exactly (and far inside 64 bits, which orjson and msgpack need), finite
numbers, a bounded depth (encoders and decoders recurse), no NUL (PostgreSQL `jsonb` refuses
it), and bounded size, key count and string length. `check` walks the document once, iteratively
(a deep document cannot exhaust the stack here), and names the first violation by its path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from tableforge.domain.text import NUL

MAX_DEPTH: Final = 32  # containers inside containers, the document itself counting as 1
MAX_INT: Final = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER
MIN_INT: Final = -MAX_INT
MAX_NODES: Final = 20_000  # values (containers, keys and scalars) in one document
MAX_KEYS: Final = 1_000  # keys in one object
MAX_ITEMS: Final = 10_000  # items in one array
MAX_STRING_CHARS: Final = 20_000  # one string value
MAX_KEY_CHARS: Final = 200  # one object key


@dataclass(frozen=True, slots=True)
class Violation:
    """What is wrong and where: `limit` is a stable snake_case name (`max_depth`, `int_range`,
    `nul`...), `path` a JSON-pointer-like path inside the document (`/sheets/0/hp`)."""

    limit: str
    path: str
    message: str

    @property
    def is_text(self) -> bool:
        return self.limit == "nul"


def _pointer(parts: tuple[str | int, ...]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts) if parts else ""


def check(doc: Any) -> Violation | None:
    """The first violation in `doc` (as parsed from JSON: dict, list, str, int, float, bool, None),
    or None when it is within every limit."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(doc, 1, ())]
    nodes = 0
    while stack:
        value, depth, path = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return Violation("max_nodes", _pointer(path), f"the document has over {MAX_NODES} values")
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            if not MIN_INT <= value <= MAX_INT:
                return Violation("int_range", _pointer(path),
                                 f"integers must be between {MIN_INT} and {MAX_INT}")
        elif isinstance(value, float):
            if not math.isfinite(value):
                return Violation("finite_number", _pointer(path), "numbers must be finite (no NaN or Infinity)")
        elif isinstance(value, str):
            if len(value) > MAX_STRING_CHARS:
                return Violation("max_string_chars", _pointer(path),
                                 f"strings may hold at most {MAX_STRING_CHARS} characters")
            if NUL in value:
                return Violation("nul", _pointer(path), "strings may not contain the NUL character (U+0000)")
        elif isinstance(value, dict):
            if depth > MAX_DEPTH:
                return Violation("max_depth", _pointer(path), f"the document is nested over {MAX_DEPTH} deep")
            if len(value) > MAX_KEYS:
                return Violation("max_keys", _pointer(path), f"objects may hold at most {MAX_KEYS} keys")
            for key, item in value.items():
                if not isinstance(key, str):
                    return Violation("key_type", _pointer(path), "object keys must be strings")
                if len(key) > MAX_KEY_CHARS:
                    return Violation("max_key_chars", _pointer((*path, key[:40])),
                                     f"object keys may hold at most {MAX_KEY_CHARS} characters")
                if NUL in key:
                    return Violation("nul", _pointer(path), "keys may not contain the NUL character (U+0000)")
                stack.append((item, depth + 1, (*path, key)))
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                return Violation("max_depth", _pointer(path), f"the document is nested over {MAX_DEPTH} deep")
            if len(value) > MAX_ITEMS:
                return Violation("max_items", _pointer(path), f"arrays may hold at most {MAX_ITEMS} items")
            stack.extend((item, depth + 1, (*path, i)) for i, item in enumerate(value))
        else:
            return Violation("value_type", _pointer(path), f"{type(value).__name__} is not a JSON value")
    return None

"""Text that may be stored: no NUL character, the same on every backend and at every edge.

PostgreSQL refuses U+0000 in `text` and `jsonb` (the statement fails, and asyncpg discards the
pooled connection), while SQLite stores it: the same request would behave differently on the two
backends. So a NUL is refused at the edge (HTTP and WebSocket) with one code, `invalid_text`,
before anything reaches a service.
"""

from __future__ import annotations

from typing import Any, Final

from tableforge.domain.errors import ValidationFailed

INVALID_TEXT: Final = "invalid_text"
NUL: Final = "\x00"
NUL_MESSAGE: Final = "text may not contain the NUL character (U+0000)"


def has_nul(text: str) -> bool:
    """True when `text` holds a NUL. `in` on a str is a C-level scan: cheap on every string."""
    return NUL in text


def check_text(text: str) -> str:
    """`text` unchanged, or ValueError when it holds a NUL (pydantic and msgspec validators raise it)."""
    if NUL in text:
        raise ValueError(NUL_MESSAGE)
    return text


# A NUL inside a JSON string must be escaped (a raw control character is not JSON), so a JSON
# document holds a NUL only where its text holds this escape: a cheap test on the raw bytes.
JSON_NUL_ESCAPE = "\\u0000"
_JSON_NUL_ESCAPE_BYTES = JSON_NUL_ESCAPE.encode()


class InvalidText(ValidationFailed):
    code = INVALID_TEXT


def reject_nul(value: str, field: str = "text") -> str:
    """Return `value`, or raise `invalid_text` if it holds a NUL character."""
    if NUL in value:
        raise InvalidText(f"`{field}` contains a NUL character (\\u0000), which cannot be stored",
                          details={"field": field})
    return value


def find_nul(value: Any, path: str = "$") -> str | None:
    """The path of the first string (or key) holding a NUL in a decoded JSON value, else None.
    Iterative, so that a deeply nested value cannot exhaust the stack."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return where
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and NUL in key:
                    return where
                stack.append((f"{where}.{key}", sub))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}[{i}]", sub) for i, sub in enumerate(item))
    return None


def json_may_hold_nul(raw: str | bytes) -> bool:
    """False when a JSON document surely holds no NUL in any string (the common case, one
    substring search); True when it may (then decode it and use `find_nul` to be sure: the
    escape may also be the text `\\\\u0000`, a backslash followed by `u0000`)."""
    if isinstance(raw, str):
        return JSON_NUL_ESCAPE in raw
    return _JSON_NUL_ESCAPE_BYTES in raw

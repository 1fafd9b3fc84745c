"""Text that may be stored: no NUL character.

PostgreSQL refuses U+0000 in `text` and `jsonb` (the statement fails, and asyncpg discards the
pooled connection), while SQLite stores it: the same request would behave differently on the two
backends. So a NUL is refused at the edge (HTTP and WebSocket) with one code, `invalid_text`,
before anything reaches a service.
"""

from __future__ import annotations

from typing import Final

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

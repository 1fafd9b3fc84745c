"""The one encoder of stored event bodies (the bytes clients receive).

`encode_body` for a known version, `body_template` for a body whose versions are only known inside
a SQL statement (the same dict, encoded once with marks in place of the versions, split around
them). Both encode the same dict, so the bytes are the same either way.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson


def _envelope(etype: str, room_id: str, version: int, ts: float, by: str | None,
              payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": etype, "room_id": room_id, "version": version, "ts": ts, "by": by, **payload}


def encode_body(etype: str, room_id: str, version: int, ts: float, by: str | None, payload: dict[str, Any]) -> bytes:
    """A stored event's body, exactly what clients receive."""
    return orjson.dumps(_envelope(etype, room_id, version, ts, by, payload))


# Marks for versions only known inside a statement. `"version":` (or `"token_version":`) followed by
# such a number cannot occur inside an encoded JSON string (its quote would be escaped).
ROOM_VERSION = -7_000_000_000_000_001
TOKEN_VERSION = -7_000_000_000_000_002
_ROOM_KEY, _TOKEN_KEY = b'"version":', b'"token_version":'
_ROOM_MARK, _TOKEN_MARK = _ROOM_KEY + str(ROOM_VERSION).encode(), _TOKEN_KEY + str(TOKEN_VERSION).encode()


class Template(NamedTuple):
    """A body split around its version marks: `pieces[i]`, then the version `marks[i]` stands for
    (0: the room's, 1: the token's), then `pieces[i + 1]`, …"""

    pieces: list[str]
    marks: tuple[int, ...]

    def fill(self, room_version: int, token_version: int = 0) -> bytes:
        pieces, marks = self.pieces, self.marks
        if marks == (0, 1):  # token.moved, the hot one
            return f"{pieces[0]}{room_version}{pieces[1]}{token_version}{pieces[2]}".encode()
        values = (str(room_version), str(token_version))
        out = [pieces[0]]
        for mark, piece in zip(marks, pieces[1:], strict=True):
            out.append(values[mark])
            out.append(piece)
        return "".join(out).encode()


def body_template(etype: str, room_id: str, ts: float, by: str | None, payload: dict[str, Any]) -> Template:
    """The body with the room version (and ROOM_VERSION / TOKEN_VERSION in `payload`) left open."""
    raw = orjson.dumps(_envelope(etype, room_id, ROOM_VERSION, ts, by, payload))
    pieces: list[bytes] = []
    marks: list[int] = []
    for i, part in enumerate(raw.split(_ROOM_MARK)):
        if i:
            pieces[-1] += _ROOM_KEY
            marks.append(0)
        for j, sub in enumerate(part.split(_TOKEN_MARK)):
            if j:
                pieces[-1] += _TOKEN_KEY
                marks.append(1)
            pieces.append(sub)
    return Template([p.decode() for p in pieces], tuple(marks))


# The room-version key as it reads inside a body that is itself a JSON string (`room_events.variants`
# holds [selector, body-as-text] pairs): as unforgeable by user text as the plain mark, which inside
# such a string is escaped twice.
_ESCAPED_KEY = orjson.dumps(_ROOM_KEY.decode()).decode()[1:-1]
_ESCAPED_MARK = _ESCAPED_KEY + str(ROOM_VERSION)


def variants_template(room_id: str, ts: float, by: str | None,
                      variants: tuple[tuple[str, str, dict[str, Any]], ...]) -> Template | None:
    """`Routing.encoded_variants()` of these (selector, event type, payload) variants with the room
    version left open (None: no variants), for a statement that stores them with a version it takes."""
    if not variants:
        return None
    text = orjson.dumps([[sel, encode_body(etype, room_id, ROOM_VERSION, ts, by, payload).decode()]
                         for sel, etype, payload in variants]).decode()
    parts = text.split(_ESCAPED_MARK)
    return Template([p + _ESCAPED_KEY for p in parts[:-1]] + [parts[-1]], (0,) * (len(parts) - 1))

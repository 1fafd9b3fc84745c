"""The socket's decoder, in-process: every check happens before a message reaches a handler, with
exact limits, and no frame within the size limit can make it raise anything but ProtocolError."""

from __future__ import annotations

import json

import pytest

from tableforge.domain import limits
from tableforge.domain.errors import ValidationFailed
from tableforge.domain.text import find_nul, json_may_hold_nul, reject_nul
from tableforge.realtime import protocol as p

ROOM = "3f2b8c1e-8d4a-4c2e-9b1a-7e6f5d4c3b2a"


def code_of(frame: str | bytes) -> tuple[str, object]:
    try:
        p.decode(frame)
    except p.ProtocolError as exc:
        return exc.code, exc.msg_id
    return "ok", None


def nest(depth: int, opener: str = "[", closer: str = "]") -> str:
    """`depth` levels in all, counting the message object."""
    return '{"type":"ping","id":1,"x":' + opener * (depth - 1) + ("1" if opener != "[" else "") + \
        closer * (depth - 1) + "}"


@pytest.mark.parametrize("depth", [2, 31, 32])
def test_nesting_up_to_the_limit_is_read(depth: int) -> None:
    assert code_of(nest(depth)) == ("ok", None)
    assert code_of(nest(depth, '{"a":', "}")) == ("ok", None)


@pytest.mark.parametrize("depth", [33, 34, 1000, 20000])
def test_nesting_beyond_the_limit_is_too_deep(depth: int) -> None:
    assert code_of(nest(depth)) == ("too_deep", None)
    assert code_of(nest(depth, '[{"a":', "}]")) == ("too_deep", None)
    assert code_of(nest(depth).encode()) == ("too_deep", None)


def test_brackets_inside_strings_do_not_count() -> None:
    text = '[[[{{{\\"\\\\' * 100
    assert code_of(json.dumps({"type": "chat.send", "room_id": ROOM, "text": text, "id": 1})) == ("ok", None)
    # Unbalanced or unterminated: not JSON, whatever the brackets say.
    assert code_of("[" * 40 + '"' + '\\"' * 1000)[0] in ("bad_json", "too_deep")
    assert code_of('{"type":"ping","id":1,"x":' + "[}" * 40 + "}")[0] == "bad_json"


@pytest.mark.parametrize(("msg_id", "ok"), [
    (2**53 - 1, True), (-(2**53 - 1), True), (2**53, False), (-(2**53), False), (2**64, False), (10**400, False),
    ("x" * 64, True), ("x" * 65, False), (1.5, False), (True, False), ([], False), ({}, False),
])
def test_message_ids(msg_id: object, ok: bool) -> None:
    code, echoed = code_of(json.dumps({"type": "ping", "id": msg_id}))
    assert (code, echoed) == (("ok", None) if ok else ("invalid_message", None))


@pytest.mark.parametrize("field", ["since", "if_version"])
def test_versions_are_bigints(field: str) -> None:
    mtype = "join" if field == "since" else "token.remove"
    base = {"type": mtype, "id": "v", "room_id": ROOM, "token_id": ROOM}
    assert code_of(json.dumps({**base, field: limits.VERSION_MAX})) == ("ok", None)
    for bad in (limits.VERSION_MAX + 1, 2**64, -1):
        assert code_of(json.dumps({**base, field: bad})) == ("invalid_message", "v")


def test_numbers_that_are_not_json_numbers() -> None:
    def pointer(x: str) -> str:
        return f'{{"type":"pointer","id":2,"room_id":"{ROOM}","x":{x},"y":0}}'

    for literal in ("NaN", "Infinity", "-Infinity", "1e999", "01", "+1", ".5"):
        assert code_of(pointer(literal)) == ("bad_json", None), literal
    assert code_of(pointer("9" * 400)) == ("invalid_message", 2)


def test_nul_anywhere_is_invalid_text() -> None:
    base = {"type": "chat.send", "id": "n", "room_id": ROOM, "text": "hi"}
    for frame in ({**base, "text": "a\x00"}, {**base, "extra": ["\x00"]}, {**base, "k\x00": 1},
                  {**base, "room_id": ROOM + "\x00"}, {**base, "type": "chat.send\x00"}):
        assert code_of(json.dumps(frame)) == ("invalid_text", "n")
        assert code_of(json.dumps(frame).encode()) == ("invalid_text", "n")
    assert code_of(json.dumps({**base, "id": "n\x00"})) == ("invalid_text", None)
    assert code_of(json.dumps({**base, "text": "a\\u0000"})) == ("ok", None), "a backslash, then u0000"


def test_binary_frames_must_be_utf8_everywhere() -> None:
    frame = b'{"type":"chat.send","id":"b","room_id":"%s","text":"hi","\xc0\xafkey":1}' % ROOM.encode()
    assert code_of(frame) == ("bad_json", None)
    assert code_of(frame.replace(b"\xc0\xaf", b"")) == ("ok", None)


def test_the_shared_nul_helpers() -> None:
    assert reject_nul("fine") == "fine"
    with pytest.raises(ValidationFailed) as err:
        reject_nul("a\x00b", "username")
    assert (err.value.code, err.value.status, err.value.details) == ("invalid_text", 422, {"field": "username"})
    assert find_nul({"a": [1, {"b": "x\x00"}]}) == "$.a[1].b"
    assert find_nul({"a": ["x"]}) is None
    assert json_may_hold_nul(b'{"a":"\\u0000"}') and not json_may_hold_nul('{"a":"u0000"}')


def test_ids_are_made_canonical() -> None:
    upper = p.decode(json.dumps({"type": "token.move", "room_id": ROOM.upper(), "token_id": ROOM.replace("-", ""),
                                 "x": 1, "y": 2}))
    assert (upper.room_id, upper.token_id) == (ROOM, ROOM)  # type: ignore[union-attr]
    digits = "00000000-0000-0000-0000-000000000000"
    assert p.decode(json.dumps({"type": "leave", "room_id": digits})).room_id == digits  # type: ignore[union-attr]


@pytest.mark.parametrize("room_id", [ROOM + "\n", ROOM.upper() + "\n", ROOM.replace("-", "") + "\n", "\n" + ROOM,
                                     ROOM[:-1], ROOM + "0", "{" + ROOM + "}", "urn:uuid:" + ROOM])
def test_ids_in_no_other_form(room_id: str) -> None:
    assert code_of(json.dumps({"type": "join", "id": 5, "room_id": room_id})) == ("invalid_message", 5)


def test_join_announces_batch_with_a_boolean_only() -> None:
    msg = p.decode(json.dumps({"type": "join", "id": 1, "room_id": ROOM, "batch": True}))
    assert isinstance(msg, p.Join) and msg.batch is True
    assert p.decode(json.dumps({"type": "join", "room_id": ROOM})).batch is False  # type: ignore[union-attr]
    assert code_of(json.dumps({"type": "join", "id": 2, "room_id": ROOM, "batch": "yes"})) == ("invalid_message", 2)

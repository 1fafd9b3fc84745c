"""The socket's decoder, frame by frame: what a client may send, and the error code it gets when the
frame is refused (docs/protocol.md, "Errors"). Only messages whose fate the protocol already fixes."""

from __future__ import annotations

import orjson
import pytest

from tableforge.domain import limits
from tableforge.realtime import protocol
from tableforge.realtime.protocol import ProtocolError, decode, message_type

ROOM = "6f1c2a3e-0b4d-4c5e-8f90-1a2b3c4d5e6f"
TOKEN = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def frame(**fields: object) -> str:
    return orjson.dumps(fields).decode()


def refused(text: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode(text)
    return caught.value


def test_join_with_since_and_a_string_id() -> None:
    msg = decode(frame(type="join", id="j1", room_id=ROOM, since=41))
    assert isinstance(msg, protocol.Join) and message_type(msg) == "join"
    assert (msg.id, msg.room_id, msg.since) == ("j1", ROOM, 41)
    assert decode(frame(type="join", room_id=ROOM)).since is None  # type: ignore[union-attr]


def test_every_message_type_is_accepted_in_its_plain_form() -> None:
    plain = {
        "join": {"room_id": ROOM},
        "leave": {"room_id": ROOM},
        "token.add": {"room_id": ROOM, "asset_id": TOKEN, "x": 10, "y": -20.5},
        "token.move": {"room_id": ROOM, "token_id": TOKEN, "x": 1.5, "y": 2},
        "token.update": {"room_id": ROOM, "token_id": TOKEN, "rotation": 90},
        "token.remove": {"room_id": ROOM, "token_id": TOKEN},
        "chat.send": {"room_id": ROOM, "text": "hello table"},
        "dice.roll": {"room_id": ROOM, "notation": "2d6+1"},
        "pointer": {"room_id": ROOM, "x": 0, "y": 0},
        "ping": {},
        "scene.view": {"room_id": ROOM, "scene_id": TOKEN},
        "scene.create": {"room_id": ROOM, "name": "Cave"},
        "scene.update": {"room_id": ROOM, "scene_id": TOKEN, "name": "Cave"},
        "scene.remove": {"room_id": ROOM, "scene_id": TOKEN},
        "scene.activate": {"room_id": ROOM, "scene_id": TOKEN},
        "fog.change": {"room_id": ROOM, "scene_id": TOKEN, "op": "reveal_all"},
        "token.bar": {"room_id": ROOM, "token_id": TOKEN, "key": "hp", "value": 3},
        "token.condition": {"room_id": ROOM, "token_id": TOKEN, "add": ["prone"]},
        "initiative": {"room_id": ROOM, "op": "next"},
        "ruler": {"room_id": ROOM, "points": [[0, 0], [10, 10]]},
        "board.ping": {"room_id": ROOM, "x": 1, "y": 2},
        "undo": {"room_id": ROOM},
    }
    assert set(plain) == protocol.KNOWN_TYPES
    for mtype, fields in plain.items():
        msg = decode(frame(type=mtype, id=7, **fields))
        assert message_type(msg) == mtype and msg.id == 7


def test_defaults_a_client_may_leave_out() -> None:
    add = decode(frame(type="token.add", room_id=ROOM, asset_id=TOKEN, x=1, y=2))
    assert isinstance(add, protocol.TokenAdd)
    assert (add.x, add.y, add.rotation, add.scale, add.z_index, add.id) == (1.0, 2.0, 0.0, 1.0, 0, None)
    move = decode(frame(type="token.move", room_id=ROOM, token_id=TOKEN, x=3, y=4))
    assert isinstance(move, protocol.TokenMove) and move.preview is False and move.if_version is None
    move = decode(frame(type="token.move", room_id=ROOM, token_id=TOKEN, x=3, y=4, preview=True, if_version=9))
    assert isinstance(move, protocol.TokenMove) and move.preview is True and move.if_version == 9
    update = decode(frame(type="token.update", room_id=ROOM, token_id=TOKEN, scale=2))
    assert isinstance(update, protocol.TokenUpdate)
    assert (update.x, update.y, update.rotation, update.scale, update.z_index) == (None, None, None, 2.0, None)


def test_values_at_the_limits_are_accepted() -> None:
    edge = decode(frame(type="token.add", room_id=ROOM, asset_id=TOKEN, x=limits.COORD_MAX, y=-limits.COORD_MAX,
                        rotation=limits.ROTATION_MAX, scale=limits.SCALE_MIN, z_index=-limits.Z_INDEX_MAX))
    assert isinstance(edge, protocol.TokenAdd) and edge.x == limits.COORD_MAX
    chat = decode(frame(type="chat.send", room_id=ROOM, text="x" * limits.CHAT_MAX_CHARS))
    assert isinstance(chat, protocol.ChatSend) and len(chat.text) == limits.CHAT_MAX_CHARS
    assert decode(frame(type="ping", id="i" * 64)).id == "i" * 64


def test_a_bytes_frame_decodes_like_text() -> None:
    msg = decode(frame(type="chat.send", room_id=ROOM, text="héllo").encode())
    assert isinstance(msg, protocol.ChatSend) and msg.text == "héllo"


@pytest.mark.parametrize("text", ["not json", "{", '{"type":"ping"', ""])
def test_a_frame_that_is_not_json_is_bad_json(text: str) -> None:
    error = refused(text)
    assert error.code == "bad_json" and error.msg_id is None


@pytest.mark.parametrize("text", ["[1, 2]", '"ping"', "42", "null"])
def test_json_that_is_not_an_object_is_an_invalid_message(text: str) -> None:
    assert refused(text).code == "invalid_message"


def test_a_message_without_a_type_is_invalid_and_its_id_is_echoed() -> None:
    error = refused(frame(id="m1", room_id=ROOM))
    assert (error.code, error.msg_id) == ("invalid_message", "m1")
    error = refused(frame(type=5, id=3))
    assert (error.code, error.msg_id) == ("invalid_message", 3)


def test_an_unknown_type_is_named_as_such() -> None:
    error = refused(frame(type="teleport", id=12, room_id=ROOM))
    assert (error.code, error.msg_id) == ("unknown_type", 12)
    assert "teleport" in error.message


BAD = [
    pytest.param({"type": "join", "room_id": "not-a-uuid"}, id="room id not a uuid"),
    pytest.param({"type": "join"}, id="room id missing"),
    pytest.param({"type": "join", "room_id": ROOM, "since": -1}, id="negative since"),
    pytest.param({"type": "join", "room_id": ROOM, "since": "3"}, id="since as a string"),
    pytest.param({"type": "token.move", "room_id": ROOM, "token_id": TOKEN, "x": 1}, id="y missing"),
    pytest.param({"type": "token.move", "room_id": ROOM, "token_id": TOKEN, "x": "1", "y": 2}, id="x as a string"),
    pytest.param({"type": "token.move", "room_id": ROOM, "token_id": TOKEN, "x": limits.COORD_MAX * 2, "y": 0},
                 id="x beyond the board"),
    pytest.param({"type": "token.move", "room_id": ROOM, "token_id": "t1", "x": 1, "y": 2}, id="token id not a uuid"),
    pytest.param({"type": "token.move", "room_id": ROOM, "token_id": TOKEN, "x": 1, "y": 2, "if_version": -2},
                 id="negative if_version"),
    pytest.param({"type": "token.add", "room_id": ROOM, "asset_id": TOKEN, "x": 0, "y": 0, "scale": 0},
                 id="scale zero"),
    pytest.param({"type": "token.add", "room_id": ROOM, "asset_id": TOKEN, "x": 0, "y": 0,
                  "z_index": limits.Z_INDEX_MAX + 1}, id="z index too high"),
    pytest.param({"type": "token.update", "room_id": ROOM, "token_id": TOKEN, "rotation": limits.ROTATION_MAX * 2},
                 id="rotation too large"),
    pytest.param({"type": "chat.send", "room_id": ROOM, "text": ""}, id="empty chat"),
    pytest.param({"type": "chat.send", "room_id": ROOM, "text": "x" * (limits.CHAT_MAX_CHARS + 1)}, id="chat too long"),
    pytest.param({"type": "chat.send", "room_id": ROOM, "text": 5}, id="chat not text"),
    pytest.param({"type": "dice.roll", "room_id": ROOM, "notation": ""}, id="empty notation"),
    pytest.param({"type": "dice.roll", "room_id": ROOM, "notation": "d" * (limits.NOTATION_MAX_CHARS + 1)},
                 id="notation too long"),
    pytest.param({"type": "pointer", "room_id": ROOM, "x": 0}, id="pointer without y"),
]


@pytest.mark.parametrize("fields", BAD)
def test_a_known_type_with_bad_fields_is_an_invalid_message_and_echoes_the_id(fields: dict[str, object]) -> None:
    error = refused(frame(id="req-9", **fields))
    assert (error.code, error.msg_id) == ("invalid_message", "req-9")
    assert error.message


def test_an_id_that_is_neither_text_nor_a_number_is_not_echoed() -> None:
    for bad_id in (True, None, [1], {"a": 1}):
        error = refused(frame(type="join", id=bad_id, room_id="nope"))
        assert error.code == "invalid_message" and error.msg_id is None
    error = refused(frame(type="ping", id="i" * 65))  # over 64 characters
    assert error.code == "invalid_message"


def test_play_tool_messages_are_bounded_where_they_are_decoded() -> None:
    bar = decode(frame(type="token.bar", room_id=ROOM, token_id=TOKEN, key="hp", max=None))
    assert isinstance(bar, protocol.TokenBar) and bar.max is None and bar.value is None
    kept = decode(frame(type="token.bar", room_id=ROOM, token_id=TOKEN, key="hp", value=1))
    assert isinstance(kept, protocol.TokenBar) and kept.max is protocol.msgspec.UNSET
    for bad in (frame(type="token.bar", room_id=ROOM, token_id=TOKEN, key="hp", value=1_000_001),
                frame(type="token.condition", room_id=ROOM, token_id=TOKEN, add=["x" * 33]),
                frame(type="initiative", room_id=ROOM, op="shuffle"),
                frame(type="ruler", room_id=ROOM, points=[[0, 0]] * 65),
                frame(type="token.add", room_id=ROOM, asset_id=TOKEN, x=1, y=2, size=21),
                frame(type="token.update", room_id=ROOM, token_id=TOKEN, name_visibility="nobody")):
        assert refused(bad).code == "invalid_message", bad

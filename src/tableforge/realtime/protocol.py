"""The WebSocket wire protocol: client messages decoded once into typed structs (msgspec).

Decoding validates types and ranges in C; a frame that fails gets an `error` frame whose
code says why (`bad_json`, `unknown_type`, `invalid_message`), echoing the message `id`.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import orjson

from tableforge.domain import limits

Coord = Annotated[float, msgspec.Meta(ge=-limits.COORD_MAX, le=limits.COORD_MAX)]
Rotation = Annotated[float, msgspec.Meta(ge=-limits.ROTATION_MAX, le=limits.ROTATION_MAX)]
Scale = Annotated[float, msgspec.Meta(ge=limits.SCALE_MIN, le=limits.SCALE_MAX)]
ZIndex = Annotated[int, msgspec.Meta(ge=-limits.Z_INDEX_MAX, le=limits.Z_INDEX_MAX)]
Version = Annotated[int, msgspec.Meta(ge=0)]
MsgId = Annotated[str, msgspec.Meta(max_length=64)] | int
RoomId = Annotated[str, msgspec.Meta(pattern=limits.UUID_PATTERN)]


class _Msg(msgspec.Struct, tag_field="type", kw_only=True):
    id: MsgId | None = None


class Join(_Msg, tag="join"):
    room_id: RoomId
    since: Version | None = None


class Leave(_Msg, tag="leave"):
    room_id: RoomId


class TokenAdd(_Msg, tag="token.add"):
    room_id: RoomId
    asset_id: RoomId
    x: Coord
    y: Coord
    rotation: Rotation = 0.0
    scale: Scale = 1.0
    z_index: ZIndex = 0


class TokenMove(_Msg, tag="token.move"):
    room_id: RoomId
    token_id: RoomId
    x: Coord
    y: Coord
    preview: bool = False
    if_version: Version | None = None


class TokenUpdate(_Msg, tag="token.update"):
    room_id: RoomId
    token_id: RoomId
    x: Coord | None = None
    y: Coord | None = None
    rotation: Rotation | None = None
    scale: Scale | None = None
    z_index: ZIndex | None = None
    if_version: Version | None = None


class TokenRemove(_Msg, tag="token.remove"):
    room_id: RoomId
    token_id: RoomId
    if_version: Version | None = None


class ChatSend(_Msg, tag="chat.send"):
    room_id: RoomId
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=limits.CHAT_MAX_CHARS)]


class DiceRoll(_Msg, tag="dice.roll"):
    room_id: RoomId
    notation: Annotated[str, msgspec.Meta(min_length=1, max_length=limits.NOTATION_MAX_CHARS)]


class Pointer(_Msg, tag="pointer"):
    room_id: RoomId
    x: Coord
    y: Coord


class Ping(_Msg, tag="ping"):
    pass


ClientMessage = Join | Leave | TokenAdd | TokenMove | TokenUpdate | TokenRemove | ChatSend | DiceRoll | Pointer | Ping
_decoder = msgspec.json.Decoder(ClientMessage)
KNOWN_TYPES = frozenset(
    ("join", "leave", "token.add", "token.move", "token.update", "token.remove", "chat.send", "dice.roll",
     "pointer", "ping")
)
class ProtocolError(Exception):
    def __init__(self, code: str, message: str, msg_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.msg_id = msg_id


def decode(frame: str | bytes) -> ClientMessage:
    """Decode and validate one client frame, or raise ProtocolError with the best code we can give."""
    try:
        msg = _decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise _explain(frame, str(exc)) from None
    except msgspec.DecodeError:
        raise ProtocolError("bad_json", "the frame is not valid JSON") from None
    return msg


def _type_of(msg: ClientMessage) -> str:
    return type(msg).__struct_config__.tag  # type: ignore[return-value]


def _explain(frame: str | bytes, detail: str) -> ProtocolError:
    """Error path only: look at the frame generically to pick a code and echo the id."""
    try:
        raw = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return ProtocolError("bad_json", "the frame is not valid JSON")
    if not isinstance(raw, dict):
        return ProtocolError("invalid_message", "a message must be a JSON object")
    msg_id = raw.get("id")
    if not isinstance(msg_id, (str, int)) or isinstance(msg_id, bool):
        msg_id = None
    mtype = raw.get("type")
    if not isinstance(mtype, str):
        return ProtocolError("invalid_message", "a message needs a string `type`", msg_id)
    if mtype not in KNOWN_TYPES:
        return ProtocolError("unknown_type", f"unknown message type {mtype[:40]!r}", msg_id)
    return ProtocolError("invalid_message", detail, msg_id)


def message_type(msg: ClientMessage) -> str:
    return _type_of(msg)


def encode(obj: Any) -> str:
    return orjson.dumps(obj).decode()

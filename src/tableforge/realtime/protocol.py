"""The WebSocket wire protocol: client messages decoded once into typed structs (msgspec).

Decoding validates types and ranges in C; a frame that fails gets an `error` frame whose
code says why (`bad_json`, `unknown_type`, `invalid_message`, `too_deep`, `invalid_text`),
echoing the message `id` when it could be read. Every check happens here, before anything
is done with the message, so a handler never sees a value it cannot store or echo:
- the `id` is a string of at most 64 characters or an integer with |id| < 2^53 (what every
  JSON client, JavaScript included, reads back exactly, and what the encoder can write);
- versions are 0..2^63-1 (a database BIGINT); coordinates and the other numbers are bounded
  (domain/limits.py), and JSON has no NaN or Infinity (such a frame is `bad_json`);
- a frame nested deeper than MAX_DEPTH is refused unread: nothing legitimate nests, and the
  decoder recurses per level;
- a NUL character in any string is refused (`invalid_text`, domain/text.py);
- a binary frame must be UTF-8 throughout;
- room, token and asset ids come out in canonical form, whatever case or dashes they came in.
The usual frame pays four substring searches for these on top of the decode (about 0.3 µs of
the 1.7 µs a `token.move` takes); other ids, like every error, take the slower path.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

import msgspec
import orjson

from tableforge.domain import limits
from tableforge.domain.text import INVALID_TEXT, JSON_NUL_ESCAPE, NUL, find_nul

Coord = Annotated[float, msgspec.Meta(ge=-limits.COORD_MAX, le=limits.COORD_MAX)]
Rotation = Annotated[float, msgspec.Meta(ge=-limits.ROTATION_MAX, le=limits.ROTATION_MAX)]
Scale = Annotated[float, msgspec.Meta(ge=limits.SCALE_MIN, le=limits.SCALE_MAX)]
ZIndex = Annotated[int, msgspec.Meta(ge=-limits.Z_INDEX_MAX, le=limits.Z_INDEX_MAX)]
Version = Annotated[int, msgspec.Meta(ge=0, le=limits.VERSION_MAX)]
MsgId = (Annotated[str, msgspec.Meta(max_length=limits.MSG_ID_MAX_CHARS)]
         | Annotated[int, msgspec.Meta(ge=-limits.MSG_ID_INT_MAX, le=limits.MSG_ID_INT_MAX)])
# Ids as the server writes them; the other forms the protocol accepts (any case, no dashes) are
# rewritten on the error path (`_canonical_ids`), so that the usual frame pays nothing for them.
# Python's `re` (msgspec's engine) lets `$` match before a final newline: \A and \Z do not.
RoomId = Annotated[str, msgspec.Meta(pattern=r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")]
_ANY_UUID = re.compile(limits.UUID_PATTERN)  # used with fullmatch, for the same reason
_ID_FIELDS = ("room_id", "token_id", "asset_id", "scene_id", "map_asset_id", "entry_id")
_ID_LISTS = ("to",)
MAX_DEPTH = 32  # nesting levels of arrays/objects in one frame (the message object is level 1)


class _Msg(msgspec.Struct, tag_field="type", kw_only=True):
    id: MsgId | None = None


class Join(_Msg, tag="join"):
    room_id: RoomId
    since: Version | None = None
    scene_id: RoomId | None = None  # *extension*: the scene a GM views (ignored for others)


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
    hidden: bool = False  # *extension*: the GM layer (GMs only)
    scene_id: RoomId | None = None  # *extension*: default the scene the socket views
    name: TokenName | None = None
    size: Cells | None = None
    bars: Bars | None = None  # None: the game system's token_defaults
    conditions: Conditions | None = None
    name_visibility: FieldVisibility | None = None
    conditions_visibility: FieldVisibility | None = None


# *extension*: tokens as characters (checked in domain/token_fields.py; sizes bounded here)
TokenName = Annotated[str, msgspec.Meta(max_length=64)]
Cells = Annotated[float, msgspec.Meta(ge=0.25, le=20)]
Bars = Annotated[list[dict[str, Any]], msgspec.Meta(max_length=3)]
Conditions = Annotated[list[Annotated[str, msgspec.Meta(max_length=32)]], msgspec.Meta(max_length=20)]
FieldVisibility = Literal["everyone", "owners", "gm"]
BarValue = Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)]
BarMax = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]


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
    hidden: bool | None = None  # *extension*: GMs only
    if_version: Version | None = None
    name: TokenName | None = None
    size: Cells | None = None
    bars: Bars | None = None  # GMs only
    conditions: Conditions | None = None
    name_visibility: FieldVisibility | None = None  # GMs only
    conditions_visibility: FieldVisibility | None = None  # GMs only


class TokenBar(_Msg, tag="token.bar"):
    """*extension*: one bar's value and/or max (`max: null` drops the max)."""

    room_id: RoomId
    token_id: RoomId
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    value: BarValue | None = None
    max: BarMax | msgspec.UnsetType | None = msgspec.UNSET
    if_version: Version | None = None


class Initiative(_Msg, tag="initiative"):
    """*extension*: one operation on the room's turn order."""

    room_id: RoomId
    op: Literal["add", "remove", "sort", "next", "prev", "next_round", "clear"]
    token_id: RoomId | None = None  # add
    entry_id: RoomId | None = None  # remove
    value: BarValue | None = None  # add: None rolls the game system's formula
    if_version: Version | None = None


class TokenCondition(_Msg, tag="token.condition"):
    """*extension*: conditions added and/or removed."""

    room_id: RoomId
    token_id: RoomId
    add: Conditions | None = None
    remove: Conditions | None = None
    if_version: Version | None = None


class Undo(_Msg, tag="undo"):
    """*extension*: undo the sender's last token change in the room (db/undo_log.py)."""

    room_id: RoomId


class TokenRemove(_Msg, tag="token.remove"):
    room_id: RoomId
    token_id: RoomId
    if_version: Version | None = None


class ChatSend(_Msg, tag="chat.send"):
    room_id: RoomId
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=limits.CHAT_MAX_CHARS)]
    # *extension*: a whisper to these members
    to: Annotated[list[RoomId], msgspec.Meta(min_length=1, max_length=limits.WHISPER_MAX_RECIPIENTS)] | None = None


class DiceRoll(_Msg, tag="dice.roll"):
    room_id: RoomId
    notation: Annotated[str, msgspec.Meta(min_length=1, max_length=limits.NOTATION_MAX_CHARS)]
    visibility: Literal["room", "gm", "self"] = "room"  # *extension*: a secret roll
    # *extension*: a label given apart from the notation (a preset's name), checked like a typed one
    label: Annotated[str, msgspec.Meta(max_length=limits.DICE_LABEL_MAX_CHARS)] | None = None


# -- *extension*: scenes and fog of war (GMs only) ----------------------------------------------
SceneName = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.NAME_MAX_CHARS)]
Grid = Annotated[dict[str, Any], msgspec.Meta(max_length=16)]  # checked key by key in domain/scenes.py
Extent = Annotated[float, msgspec.Meta(gt=0, le=2 * limits.COORD_MAX)]
Point = tuple[Coord, Coord]


class Rect(msgspec.Struct, tag_field="type", tag="rect", forbid_unknown_fields=True):
    x: Coord
    y: Coord
    width: Extent
    height: Extent


class Polygon(msgspec.Struct, tag_field="type", tag="polygon", forbid_unknown_fields=True):
    points: Annotated[list[Point], msgspec.Meta(min_length=3, max_length=64)]


class SceneView(_Msg, tag="scene.view"):
    room_id: RoomId
    scene_id: RoomId


class SceneCreate(_Msg, tag="scene.create"):
    room_id: RoomId
    name: SceneName
    grid: Grid | None = None
    map_asset_id: RoomId | None = None


class SceneUpdate(_Msg, tag="scene.update"):
    room_id: RoomId
    scene_id: RoomId
    name: SceneName | None = None
    grid: Grid | None = None
    map_asset_id: RoomId | msgspec.UnsetType | None = msgspec.UNSET  # null: no map


class SceneRemove(_Msg, tag="scene.remove"):
    room_id: RoomId
    scene_id: RoomId


class SceneActivate(_Msg, tag="scene.activate"):
    room_id: RoomId
    scene_id: RoomId


class FogChange(_Msg, tag="fog.change"):
    room_id: RoomId
    scene_id: RoomId
    op: Literal["reveal", "hide", "reveal_all", "hide_all"]
    shape: Rect | Polygon | None = None


class Pointer(_Msg, tag="pointer"):
    room_id: RoomId
    x: Coord
    y: Coord


class Ruler(_Msg, tag="ruler"):
    """*extension*: a ruler's path (2..64 points; none: put away), measured and relayed, never stored."""

    room_id: RoomId
    points: Annotated[list[Point], msgspec.Meta(max_length=64)]
    scene_id: RoomId | None = None  # GMs: default the scene the socket views


class BoardPing(_Msg, tag="board.ping"):
    """*extension*: draw everyone's eye to a spot; relayed like a pointer, never stored."""

    room_id: RoomId
    x: Coord
    y: Coord


class Ping(_Msg, tag="ping"):
    pass


ClientMessage = (Join | Leave | TokenAdd | TokenMove | TokenUpdate | TokenRemove | ChatSend | DiceRoll | Pointer | Ping
                 | SceneView | SceneCreate | SceneUpdate | SceneRemove | SceneActivate | FogChange | TokenBar
                 | TokenCondition | Initiative | Ruler | BoardPing | Undo)
_decoder = msgspec.json.Decoder(ClientMessage)
KNOWN_TYPES = frozenset(
    ("join", "leave", "token.add", "token.move", "token.update", "token.remove", "chat.send", "dice.roll",
     "pointer", "ping", "scene.view", "scene.create", "scene.update", "scene.remove", "scene.activate", "fog.change",
     "token.bar", "token.condition", "initiative", "ruler", "board.ping", "undo")
)


def shape_json(shape: Rect | Polygon | None) -> dict[str, Any] | None:
    """A fog shape as domain/fog.py reads it."""
    if shape is None:
        return None
    if isinstance(shape, Rect):
        return {"type": "rect", "x": shape.x, "y": shape.y, "width": shape.width, "height": shape.height}
    return {"type": "polygon", "points": [list(p) for p in shape.points]}


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, msg_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.msg_id = msg_id


def decode(frame: str | bytes) -> ClientMessage:
    """Decode and validate one client frame, or raise ProtocolError with the best code we can give."""
    if not isinstance(frame, str):
        # A binary frame: the decoder checks UTF-8 only where it reads (an unknown key with
        # invalid bytes would pass unnoticed), so the whole frame is checked here. Rare: browsers
        # and our clients send text frames, which the server has already checked.
        try:
            frame = frame.decode()
        except UnicodeDecodeError:
            raise ProtocolError("bad_json", "the frame is not valid UTF-8 JSON") from None
    # Inline rather than in helpers: these few tests are all that the usual frame pays for the checks.
    if ("[" in frame or frame.find("{", 1) >= 0) and _too_deep(frame):
        raise ProtocolError("too_deep", f"the frame nests arrays/objects deeper than {MAX_DEPTH} levels")
    if JSON_NUL_ESCAPE in frame:
        _refuse_nul(frame)
    try:
        return _decoder.decode(frame)
    except msgspec.ValidationError as exc:
        return _canonical_ids(frame, str(exc))
    except msgspec.DecodeError:
        raise ProtocolError("bad_json", "the frame is not valid JSON") from None
    except RecursionError:  # unreachable after the depth check; kept so a frame can never end a socket
        raise ProtocolError("too_deep", "the frame nests too deeply") from None


def _canonical_ids(frame: str, detail: str) -> ClientMessage:
    """Error path: a frame whose room/token/asset ids are UUIDs in another form (upper case, no
    dashes) is decoded again with them in canonical form, the one the server stores and sends. The
    hub's rooms and the broker's channels are keyed by the string, and the databases compare ids
    differently (PostgreSQL as UUIDs, SQLite as text), so only one form may get past here."""
    try:
        raw = _generic(frame)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raw = None
    if isinstance(raw, dict):
        rewritten = False
        for name in _ID_FIELDS:
            value = raw.get(name)
            if isinstance(value, str) and _ANY_UUID.fullmatch(value):
                canonical = str(uuid.UUID(value))
                rewritten = rewritten or canonical != value
                raw[name] = canonical
        for name in _ID_LISTS:
            values = raw.get(name)
            if isinstance(values, list):
                for i, value in enumerate(values):
                    if isinstance(value, str) and _ANY_UUID.fullmatch(value):
                        canonical = str(uuid.UUID(value))
                        rewritten = rewritten or canonical != value
                        values[i] = canonical
        if rewritten:
            try:
                return _decoder.decode(msgspec.json.encode(raw))
            except msgspec.ValidationError as exc:
                detail = str(exc)  # what is wrong besides the ids
    raise _explain(frame, detail)


# Brackets only, `{}` spelled `[]` (the kind does not change the depth; mismatched kinds are
# not JSON and the decoder says so).
_BRACKETS_ONLY = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def _too_deep(frame: str | bytes) -> bool:
    """Whether the frame nests deeper than MAX_DEPTH, without recursion and in C-speed steps:
    drop what is inside strings, keep the brackets, then peel the innermost pairs off, one level
    per pass, at most MAX_DEPTH passes. Unbalanced brackets are not JSON: the decoder calls them
    `bad_json`. Only frames with more than MAX_DEPTH brackets get here: well under a millisecond
    for a 64 KiB frame, but a crafted one (a thousand 31-deep branches side by side) needs every
    pass, about 6 ms; the socket's rate limit bounds how many a client can send."""
    if isinstance(frame, str):
        if frame.count("[") + frame.count("{") <= MAX_DEPTH:  # fewer brackets than levels
            return False
        raw = frame.encode("utf-8", "surrogatepass")
    else:
        if frame.count(b"[") + frame.count(b"{") <= MAX_DEPTH:
            return False
        raw = frame
    if b'"' in raw:
        if b"\\" in raw:  # escaped backslashes first, then escaped quotes, as a JSON reader pairs them
            raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
        raw = b"".join(raw.split(b'"')[::2])  # what lies between the quotes is string content
    brackets = raw.translate(_BRACKETS_ONLY, _NOT_BRACKETS)
    if b"[" * (MAX_DEPTH + 1) in brackets:  # the usual attack: one long run, found in one search
        return True
    for level in range(MAX_DEPTH):
        peeled = brackets.replace(b"[]", b"")
        if not peeled:
            return False
        if peeled == brackets:  # "]]][[[": unbalanced, so not JSON; too deep if the open run is
            return level + peeled.count(b"[") > MAX_DEPTH
        brackets = peeled
    return True


def _generic(frame: str | bytes) -> Any:
    """The frame as plain JSON values (error paths only; depth already checked). Raises
    msgspec.DecodeError for what is not JSON (or nests too deeply after all), and
    msgspec.ValidationError for numbers beyond a double."""
    try:
        return msgspec.json.decode(frame)
    except RecursionError:
        raise msgspec.DecodeError("nested too deeply") from None


def _refuse_nul(frame: str | bytes) -> None:
    try:
        raw = _generic(frame)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return  # not JSON after all: the typed decode says so
    where = find_nul(raw)
    if where is not None:
        raise ProtocolError(INVALID_TEXT, f"a NUL character (\\u0000) is not allowed in any string (at {where})",
                            _id_of(raw))


def _id_of(raw: Any) -> Any:
    """The frame's `id` if it is one we may echo (the same rule as `MsgId`), else None."""
    if not isinstance(raw, dict):
        return None
    msg_id = raw.get("id")
    if isinstance(msg_id, str):
        return msg_id if len(msg_id) <= limits.MSG_ID_MAX_CHARS and NUL not in msg_id else None
    if isinstance(msg_id, int) and not isinstance(msg_id, bool):
        return msg_id if -limits.MSG_ID_INT_MAX <= msg_id <= limits.MSG_ID_INT_MAX else None
    return None


def _type_of(msg: ClientMessage) -> str:
    return type(msg).__struct_config__.tag  # type: ignore[return-value]


def _explain(frame: str | bytes, detail: str) -> ProtocolError:
    """Error path only: look at the frame generically to pick a code and echo the id."""
    try:
        raw = _generic(frame)
    except msgspec.DecodeError:
        return ProtocolError("bad_json", "the frame is not valid JSON")
    except msgspec.ValidationError:  # valid JSON, but a number beyond a double (1e400)
        return ProtocolError("invalid_message", f"a number is out of range: {detail}")
    if not isinstance(raw, dict):
        return ProtocolError("invalid_message", "a message must be a JSON object")
    msg_id = _id_of(raw)
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

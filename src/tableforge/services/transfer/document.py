"""The room document of a TableForge room file (format 1): msgspec structs, so that decoding a
hostile file checks every type, length and range in one pass, with an error naming the field.

Ids in the file only tie its parts together (a token's scene, a scene's map): an import gives every
row a new id. Users appear by username (ids mean nothing on another server); an audience selector's
`u:<user>` terms are written `u:<username>` (domain/audience.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from tableforge.domain import limits, scenes

FORMAT: Final = "tableforge-rooms"
FORMAT_VERSION: Final = 1

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z-]+$")]
Username = Annotated[str, msgspec.Meta(min_length=limits.USERNAME_MIN, max_length=limits.USERNAME_MAX,
                                       pattern=limits.USERNAME_PATTERN)]
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Version = Annotated[int, msgspec.Meta(ge=0, le=limits.VERSION_MAX)]
Coord = Annotated[float, msgspec.Meta(ge=-limits.COORD_MAX, le=limits.COORD_MAX)]
Name = Annotated[str, msgspec.Meta(max_length=limits.NAME_MAX_CHARS)]
# A selector term: g, p, g@<scene id of the file>, u:<username>.
Term = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
ImageKind = Literal["png", "jpeg", "webp", "gif"]
MAX_ROOMS: Final = 1000
MAX_ASSETS: Final = 10_000
MAX_TOKENS: Final = 100_000
MAX_MESSAGES: Final = 1_000_000
MAX_MEMBERS: Final = 10_000


class SystemRef(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Official systems travel by name (every server seeds its own); custom ones with their template."""
    name: Name
    official: bool
    category: Annotated[str, msgspec.Meta(max_length=50)] = "custom"
    complexity: Annotated[str, msgspec.Meta(max_length=20)] = "medium"
    description: Annotated[str, msgspec.Meta(max_length=limits.SYSTEM_DESCRIPTION_MAX)] = ""
    template: dict[str, Any] | None = None


class Member(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    username: Username
    role: Literal["gm", "player", "spectator"]
    joined_at: datetime


class Scene(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: Id
    name: Annotated[str, msgspec.Meta(max_length=scenes.NAME_MAX_CHARS)]
    position: Annotated[int, msgspec.Meta(ge=0, le=scenes.MAX_SCENES * 1000)]
    map_asset: Id | None
    grid: dict[str, Any]
    fog: dict[str, Any]
    fog_version: Version
    created_at: datetime


class Asset(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: Id
    name: Annotated[str, msgspec.Meta(max_length=200)]
    type: ImageKind
    sha256: Sha256
    width: Annotated[int, msgspec.Meta(ge=1)]
    height: Annotated[int, msgspec.Meta(ge=1)]
    size: Annotated[int, msgspec.Meta(ge=1)]
    created_at: datetime
    hidden: bool
    uploader: Username | None


class Token(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: Id
    asset: Id
    scene: Id
    owner: Username | None
    x: Coord
    y: Coord
    rotation: Annotated[float, msgspec.Meta(ge=-limits.ROTATION_MAX, le=limits.ROTATION_MAX)]
    scale: Annotated[float, msgspec.Meta(ge=limits.SCALE_MIN, le=limits.SCALE_MAX)]
    z_index: Annotated[int, msgspec.Meta(ge=-limits.Z_INDEX_MAX, le=limits.Z_INDEX_MAX)]
    version: Version
    created_at: datetime
    hidden: bool


class Message(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: Id
    user: Username | None
    kind: Literal["chat", "roll"]
    text: Annotated[str, msgspec.Meta(max_length=65_536)]  # a roll's text (repeats, labels) can be long
    roll: dict[str, Any] | None
    version: Version
    created_at: datetime
    visibility: Literal["room", "gm", "self", "whisper"]
    audience: Annotated[list[Term], msgspec.Meta(max_length=limits.WHISPER_MAX_RECIPIENTS + 4)] | None
    to: Annotated[list[Username], msgspec.Meta(max_length=limits.WHISPER_MAX_RECIPIENTS)] | None


class Room(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: Id
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=limits.NAME_MAX_CHARS)]
    version: Version
    created_at: datetime
    is_active: bool
    gm: Username
    players_scene: Id
    system: SystemRef | None
    members: Annotated[list[Member], msgspec.Meta(max_length=MAX_MEMBERS)]
    scenes: Annotated[list[Scene], msgspec.Meta(min_length=1, max_length=scenes.MAX_SCENES)]
    assets: Annotated[list[Asset], msgspec.Meta(max_length=MAX_ASSETS)]
    tokens: Annotated[list[Token], msgspec.Meta(max_length=MAX_TOKENS)]
    messages: Annotated[list[Message], msgspec.Meta(max_length=MAX_MESSAGES)]


class RoomEntry(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    file: Annotated[str, msgspec.Meta(pattern=r"^rooms/[0-9]{1,6}\.json$")]
    id: Id
    name: Annotated[str, msgspec.Meta(max_length=limits.NAME_MAX_CHARS)]


class AssetEntry(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    sha256: Sha256
    type: ImageKind
    size: Annotated[int, msgspec.Meta(ge=1)]


class Manifest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    format: Literal["tableforge-rooms"]
    format_version: int
    schema_revision: Annotated[str, msgspec.Meta(max_length=64)]
    exported_at: datetime
    source: Literal["sqlite", "postgresql"]
    rooms: Annotated[list[RoomEntry], msgspec.Meta(min_length=1, max_length=MAX_ROOMS)]
    files: Annotated[list[AssetEntry], msgspec.Meta(max_length=MAX_ASSETS)]


def encode(value: msgspec.Struct) -> bytes:
    return msgspec.json.encode(value)

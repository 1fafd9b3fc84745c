"""Room changes as data, and what storing one gives back (db/event_log.py explains why data).

A change carries its guards (owner unless GM, `if_version`, the caller's role) as fields, so every
implementation of the event log reads the same description. `StoredEvent.routing` is the event's
audience (domain/audience.py), decided where the event is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from tableforge.domain import events as ev
from tableforge.domain import wire
from tableforge.domain.audience import Routing

R = TypeVar("R")
EVERYONE = Routing()


class Change(Generic[R]):
    """A room change; `R` is what `append` gives back in `StoredEvent.result`."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class AddToken(Change[dict[str, Any]]):
    """token.added; the asset must be the room's (else asset_not_found). Result: the token.
    `scene_id` None: the players' scene. `is_gm`: a player may only add visible-asset tokens to the
    players' scene (else scene_not_found / asset_not_found, as if it did not exist)."""

    by: str
    token_id: str
    asset_id: str
    x: float
    y: float
    rotation: float
    scale: float
    z_index: int
    created_at: datetime
    scene_id: str | None = None
    hidden: bool = False
    is_gm: bool = True
    # *extension* tokens as characters: None takes the room's game system's token_defaults.
    fields: dict[str, Any] = field(default_factory=dict)  # name, name_visibility, conditions, ...
    size: float | None = None
    bars: list[dict[str, Any]] | None = None
    undoable: bool = True

    def token(self, scene_id: str, columns: dict[str, Any]) -> dict[str, Any]:
        """The new token's wire shape; `columns` are its character columns as stored."""
        return wire.token({"id": self.token_id, "asset_id": self.asset_id, "owner_id": self.by, "x": self.x,
                           "y": self.y, "rotation": self.rotation, "scale": self.scale, "z_index": self.z_index,
                           "version": 1, "scene_id": scene_id, "hidden": self.hidden} | columns)


@dataclass(frozen=True, slots=True)
class ChangeInitiative(Change[dict[str, Any]]):
    """initiative.changed: one operation on the room's turn order (domain/initiative.py). `value`
    None on `add`: rolled with the room's game system's formula. `is_gm` False: a player, who may
    add and remove their own tokens' entries and end their own turn (`next`). Result: the tracker."""

    by: str
    op: str
    token_id: str | None
    entry_id: str | None
    value: int | None
    if_version: int | None
    is_gm: bool
    new_id: str


@dataclass(frozen=True, slots=True)
class SetBar(Change[dict[str, Any]]):
    """token.bar_changed: one bar's value and/or max (`top` "keep": unchanged). Result: the token.
    `level`: what the caller may see of the token (domain/token_fields.py)."""

    by: str
    token_id: str
    key: str
    value: int | None
    top: int | str | None
    owner: str | None
    if_version: int | None
    level: str
    undoable: bool = True  # False: an undo's inverse (undoing an undo is not a redo)


@dataclass(frozen=True, slots=True)
class ChangeConditions(Change[dict[str, Any]]):
    """token.conditions_changed: conditions added and removed. Result: the token."""

    by: str
    token_id: str
    add: tuple[str, ...]
    remove: tuple[str, ...]
    owner: str | None
    if_version: int | None
    level: str
    undoable: bool = True  # False: an undo's inverse (undoing an undo is not a redo)


@dataclass(frozen=True, slots=True)
class MoveToken(Change[int]):
    """token.moved. `owner`: the caller unless GM (None: any token, and hidden ones too). Result:
    the token's version."""

    by: str
    token_id: str
    x: float
    y: float
    owner: str | None
    if_version: int | None
    undoable: bool = True  # False: an undo's inverse (undoing an undo is not a redo)


@dataclass(frozen=True, slots=True)
class UpdateToken(Change[dict[str, Any]]):
    """token.updated with `values` (columns, `hidden` included). Result: the token after the change."""

    by: str
    token_id: str
    values: dict[str, Any]
    owner: str | None
    if_version: int | None
    undoable: bool = True  # False: an undo's inverse (undoing an undo is not a redo)


@dataclass(frozen=True, slots=True)
class RemoveToken(Change[None]):
    by: str
    token_id: str
    owner: str | None
    if_version: int | None
    undoable: bool = True  # False: an undo's inverse (undoing an undo is not a redo)


@dataclass(frozen=True, slots=True)
class UndoLast(Change[dict[str, Any]]):
    """The author's last undoable token change in the room, inverted as an ordinary change of its
    kind guarded by the version the change gave the token (db/undo_log.py). `owner`: the caller
    unless GM; `level`: what the caller may see of a token (domain/token_fields.py). Result:
    `{type, token_id}` of the change undone."""

    by: str
    owner: str | None
    level: str


@dataclass(frozen=True, slots=True)
class PostMessage(Change[dict[str, Any]]):
    """chat.message (roll None) or dice.rolled. Result: the message (chat) or the roll (dice).
    `audience`: its selector (None: the room); `to`: a whisper's named users, checked to be members."""

    by: str
    username: str
    message_id: str
    text: str
    roll: dict[str, Any] | None
    created_at: datetime
    visibility: str = "room"
    audience: str | None = None
    to: tuple[str, ...] | None = None

    @property
    def kind(self) -> str:
        return "chat" if self.roll is None else "roll"

    @property
    def etype(self) -> str:
        return ev.CHAT_MESSAGE if self.roll is None else ev.DICE_ROLLED

    @property
    def routing(self) -> Routing:
        return Routing(self.audience)

    def payload(self, version: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the event payload, the result)."""
        if self.roll is None:
            message = wire.message({"id": self.message_id, "user_id": self.by, "username": self.username,
                                    "kind": "chat", "text": self.text, "roll": None, "version": version,
                                    "created_at": self.created_at, "visibility": self.visibility,
                                    "to_users": list(self.to) if self.to else None})
            return {"message": message}, message
        roll = self.roll | {"message_id": self.message_id, "user_id": self.by, "username": self.username,
                            "visibility": self.visibility}
        return {"roll": roll}, roll


@dataclass(frozen=True, slots=True)
class SetPresence(Change[None]):
    """player.joined / player.left, with is_online kept in step. `profile`: the user's public
    profile when the caller has it (else it is read)."""

    user_id: str
    online: bool
    profile: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AddAsset(Change[None]):
    """asset.added: `row` is the game_assets row, `asset` its public shape (for GMs only when hidden)."""

    by: str
    row: dict[str, Any]
    asset: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RemoveAsset(Change[bool]):
    """One token.removed per token showing the asset, then asset.removed. Result: whether another
    asset still uses the same file (`sha256`), so the file must be kept."""

    by: str
    asset_id: str
    sha256: str


@dataclass(frozen=True, slots=True)
class SetAssetHidden(Change[dict[str, Any]]):
    """asset.updated for GMs; for players asset.removed (hiding) or asset.added with the tokens it
    uncovers (revealing). Result: the asset."""

    by: str
    asset_id: str
    hidden: bool
    asset: dict[str, Any]  # its public shape, `hidden` excluded (filled in)


@dataclass(frozen=True, slots=True)
class CreateScene(Change[dict[str, Any]]):
    """scene.added (GMs). Result: the scene."""

    by: str
    scene_id: str
    name: str
    grid: dict[str, Any] | None
    map_asset_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UpdateScene(Change[dict[str, Any]]):
    """scene.updated (GMs; players too if it is their scene). `map_asset_id`: UNCHANGED, None
    (no map) or an asset id. Result: the scene."""

    by: str
    scene_id: str
    name: str | None
    grid: dict[str, Any] | None
    map_asset_id: str | object | None


UNCHANGED: Any = object()


@dataclass(frozen=True, slots=True)
class RemoveScene(Change[None]):
    by: str
    scene_id: str


@dataclass(frozen=True, slots=True)
class ActivateScene(Change[None]):
    """scene.activated: the players' scene becomes `scene_id`."""

    by: str
    scene_id: str


@dataclass(frozen=True, slots=True)
class ChangeFog(Change[None]):
    """fog.changed; `shape` is the JSON shape (checked by domain/fog.py) for reveal / hide."""

    by: str
    scene_id: str
    op: str
    shape: dict[str, Any] | None


@dataclass(slots=True)
class StoredEvent(Generic[R]):
    room_id: str
    version: int
    ts: float
    body: bytes
    result: R
    routing: Routing = EVERYONE
    # A change that stores several events (RemoveAsset): the ones before this, in version order.
    earlier: tuple[StoredEvent[None], ...] = field(default=())

    def all(self) -> tuple[StoredEvent[Any], ...]:
        """Every event the change stored, in version order (what the caller publishes)."""
        return (*self.earlier, self) if self.earlier else (self,)

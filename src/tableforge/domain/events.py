"""Room event type names (PROTOCOL.md, WebSocket protocol)."""

from __future__ import annotations

PLAYER_JOINED = "player.joined"
PLAYER_LEFT = "player.left"
TOKEN_ADDED = "token.added"
TOKEN_MOVED = "token.moved"
TOKEN_MOVING = "token.moving"
TOKEN_UPDATED = "token.updated"
TOKEN_REMOVED = "token.removed"
TOKEN_BAR_CHANGED = "token.bar_changed"  # *extension*: tokens as characters
TOKEN_CONDITIONS_CHANGED = "token.conditions_changed"
INITIATIVE_CHANGED = "initiative.changed"  # *extension*: the turn order
RULER = "ruler"  # *extension*: ephemeral, like pointer
BOARD_PING = "board.ping"
CHAT_MESSAGE = "chat.message"
DICE_ROLLED = "dice.rolled"
ASSET_ADDED = "asset.added"
ASSET_REMOVED = "asset.removed"
POINTER = "pointer"
ROOM_CLOSED = "room.closed"
SYSTEM_BROADCAST = "system.broadcast"
SYSTEM_MESSAGE = "system.message"
# Hidden information (docs/protocol.md, "Hidden information")
ROOM_SKIP = "room.skip"
SCENE_ADDED = "scene.added"
SCENE_UPDATED = "scene.updated"
SCENE_REMOVED = "scene.removed"
SCENE_ACTIVATED = "scene.activated"
FOG_CHANGED = "fog.changed"
ASSET_UPDATED = "asset.updated"

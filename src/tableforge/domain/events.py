"""Room event type names (PROTOCOL.md, WebSocket protocol)."""

from __future__ import annotations

PLAYER_JOINED = "player.joined"
PLAYER_LEFT = "player.left"
TOKEN_ADDED = "token.added"
TOKEN_MOVED = "token.moved"
TOKEN_MOVING = "token.moving"
TOKEN_UPDATED = "token.updated"
TOKEN_REMOVED = "token.removed"
CHAT_MESSAGE = "chat.message"
DICE_ROLLED = "dice.rolled"
ASSET_ADDED = "asset.added"
ASSET_REMOVED = "asset.removed"
POINTER = "pointer"
ROOM_CLOSED = "room.closed"
SYSTEM_BROADCAST = "system.broadcast"
SYSTEM_MESSAGE = "system.message"

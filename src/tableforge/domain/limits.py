"""Validation limits shared by the HTTP API and the WebSocket protocol."""

from __future__ import annotations

COORD_MAX = 1_000_000.0
ROTATION_MAX = 360_000.0
SCALE_MIN = 0.01
SCALE_MAX = 100.0
Z_INDEX_MAX = 1_000_000
# Room and token versions are database BIGINTs; larger numbers in `since`/`if_version` are refused.
VERSION_MAX = 2**63 - 1
# A WebSocket message `id`: a string this long at most, or an integer that a JSON client (a
# JavaScript number included) reads back exactly: |id| < 2^53.
MSG_ID_MAX_CHARS = 64
MSG_ID_INT_MAX = 2**53 - 1
CHAT_MAX_CHARS = 2000
NOTATION_MAX_CHARS = 200
NAME_MAX_CHARS = 100
USERNAME_MIN, USERNAME_MAX = 3, 32
USERNAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
PASSWORD_MIN, PASSWORD_MAX = 8, 256
SYSTEM_DESCRIPTION_MAX = 5000
TEMPLATE_MAX_BYTES = 256 * 1024
INVITE_CODE_LENGTH = 10
CHAT_HISTORY_IN_SNAPSHOT = 100
UUID_PATTERN = r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$"
# Versions (room and token) are BIGINT columns: a client's `if_version`/`since` beyond them cannot
# match anything, and the drivers refuse to bind it (OverflowError on SQLite, DataError on asyncpg).
VERSION_MAX = 2**63 - 1
WHISPER_MAX_RECIPIENTS = 20

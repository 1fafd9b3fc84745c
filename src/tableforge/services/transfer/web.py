"""Export and import over HTTP: `GET /api/rooms/{id}/export` (the room's GM) and
`POST /api/rooms/import` (any user, who becomes the GM). The same file and checks as the CLI;
each runs holding one of the image-check slots, so imports and exports cannot crowd out uploads
nor run the server out of memory."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import IO, Any

from tableforge.domain.errors import TooLarge
from tableforge.domain.roles import require_gm
from tableforge.services import rooms
from tableforge.services.runtime import Runtime
from tableforge.services.transfer import archive
from tableforge.services.transfer.export import export_rooms
from tableforge.services.transfer.importer import import_rooms

_CHUNK = 1024 * 1024
HTTP_JSON_MAX_BYTES = 32 * 1024 * 1024


def _scratch(rt: Runtime, kind: str) -> Path:
    return rt.settings.data_dir / f".{kind}-{secrets.token_hex(8)}.tfroom"


async def export_file(rt: Runtime, user: dict[str, Any], room_id: str) -> Path:
    """The room file in a scratch file of the data directory; the caller deletes it once sent."""
    async with rt.db.read() as conn:
        require_gm(await rooms.require_member(conn, room_id, user))
    target = _scratch(rt, "export")
    async with rt.guards.decodes.slot():
        await export_rooms(rt.db, rt.settings.assets_dir, [room_id], target)
    return target


def _copy(source: IO[bytes], target: Path, limit: int) -> None:
    got = 0
    with target.open("wb") as out:
        while chunk := source.read(_CHUNK):
            got += len(chunk)
            if got > limit:
                raise TooLarge(f"the room file is over the {limit} byte limit (TABLEFORGE_MAX_IMPORT_BYTES)",
                               code="file_too_large")
            out.write(chunk)


async def import_file(rt: Runtime, user: dict[str, Any], source: IO[bytes]) -> dict[str, Any]:
    limit = rt.settings.max_import_bytes
    path = _scratch(rt, "import")
    try:
        await asyncio.to_thread(_copy, source, path, limit)
        # Any user may send one: the documents are decoded in memory, so they are held to far less
        # than an operator's import allows.
        limits = archive.Limits(max_total_bytes=limit * 4, max_asset_bytes=rt.settings.max_upload_bytes,
                                max_json_bytes=min(limit, HTTP_JSON_MAX_BYTES))
        async with rt.guards.decodes.slot():
            return await import_rooms(rt.db, rt.settings, path, user["username"], False, limits, others=False)
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)

"""`GET /api/rooms/{id}/export` and `POST /api/rooms/import`: a room file over HTTP (services/transfer)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, UploadFile
from fastapi.responses import FileResponse

from tableforge.api import schemas as S
from tableforge.api.deps import RuntimeDep, UserDep
from tableforge.api.models import Uuid
from tableforge.api.responses import JSON

router = APIRouter()


@router.get("/api/rooms/{room_id}/export", response_class=FileResponse, responses=S.ROOM_FILE)
async def export_room(room_id: Uuid, user: UserDep, rt: RuntimeDep, background: BackgroundTasks) -> FileResponse:
    """The room as one portable file (the room's GMs only); `POST /api/rooms/import` or
    `tableforge import` on any server adds it there as a new room."""
    from tableforge.services.transfer import web  # zipfile (with bz2, lzma) only when a room file moves

    room_id = str(uuid.UUID(room_id))
    path = await web.export_file(rt, user, room_id)
    background.add_task(asyncio.to_thread, path.unlink, missing_ok=True)
    return FileResponse(path, media_type="application/zip", background=background,
                        filename=f"tableforge-room-{room_id}.tfroom")


@router.post("/api/rooms/import", status_code=201, responses=S.responses(S.ImportOut, 201))
async def import_room(user: UserDep, rt: RuntimeDep, file: Annotated[UploadFile, File()]) -> JSON:
    """Adds the file's rooms as new rooms, the caller their GM. Other users named in the file are not
    mapped to accounts here (their messages stay without an author); the whole file is checked first."""
    from tableforge.services.transfer import web

    return JSON(await web.import_file(rt, user, file.file), status_code=201)

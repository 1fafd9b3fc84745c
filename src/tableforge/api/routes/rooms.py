from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile

from tableforge.api import schemas as S
from tableforge.api.asset_files import AssetBytes
from tableforge.api.deps import RuntimeDep, UserDep, client_address
from tableforge.api.models import CHARACTER_FIELDS, AssetPatch, JoinIn, RoomIn, TokenIn, TokenPatch, Uuid
from tableforge.api.responses import JSON
from tableforge.cache.http import CACHE_IMMUTABLE, CACHE_PRIVATE, conditional_json, not_modified, not_modified_response
from tableforge.domain import limits
from tableforge.domain.errors import AppError, NotFound, TooLarge, ValidationFailed
from tableforge.domain.text import INVALID_TEXT, NUL_MESSAGE, has_nul
from tableforge.services import assets, replies, room_version, rooms, scenes, tokens

router = APIRouter()
# `img-src 'self'` and inline style let a browser show the image when the URL is opened directly
# (Firefox styles its image viewer inline); `sandbox` makes the document a unique origin without scripts.
ASSET_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


@router.post("/api/rooms", status_code=201, responses=S.responses(S.RoomOut, 201))
async def create(body: RoomIn, user: UserDep, rt: RuntimeDep) -> JSON:
    return JSON(await rooms.create(rt, user, body.name, body.game_system_id), status_code=201)


@router.get("/api/rooms", responses=S.responses(S.RoomListOut))
async def mine(user: UserDep, rt: RuntimeDep) -> JSON:
    items = await rooms.list_mine(rt, user)
    return JSON({"rooms": items, "total": len(items)})


@router.post("/api/rooms/join", responses=S.responses(S.RoomOut))
async def join(body: JoinIn, request: Request, user: UserDep, rt: RuntimeDep) -> JSON:
    # Wrong codes are limited per user and per client address: 429 once either is full.
    async with rt.guards.invite.attempt(user=user["id"], address=client_address(request)) as attempt:
        try:
            room = await rooms.join_by_invite(rt, user, body.invite_code)
        except AppError as exc:
            if exc.code == "invite_not_found":
                attempt.wrong()
            raise
        attempt.right()
    return JSON(room)


@router.get("/api/rooms/{room_id}", responses=S.responses(S.SnapshotOut, not_modified=True))
async def snapshot(room_id: Uuid, request: Request, user: UserDep, rt: RuntimeDep,
                   scene_id: Annotated[Uuid | None, Query()] = None) -> Response:
    """Member data: `private, no-cache` (always revalidated). A matching If-None-Match is
    answered 304 from one small query, without building the snapshot (see room_version).
    `scene_id`: GMs read any scene; for the others only the players' scene exists."""
    scene_id = str(uuid.UUID(scene_id)) if scene_id else None
    if_none_match = request.headers.get("if-none-match")
    if if_none_match:
        state = await room_version.room_state(rt, room_id, user["id"], scene_id)
        if state is not None and not_modified(if_none_match, state.etag):
            return not_modified_response(state.etag, CACHE_PRIVATE)
    body = await rooms.snapshot(rt, room_id, user, scene_id)
    return conditional_json(body, if_none_match=if_none_match, cache_control=CACHE_PRIVATE,
                            etag=room_version.state_of(body, user["id"]).etag)


@router.get("/api/rooms/{room_id}/scenes", responses=S.responses(S.ScenesOut))
async def list_scenes(room_id: Uuid, user: UserDep, rt: RuntimeDep) -> JSON:
    return JSON(await scenes.listing(rt, room_id, user))


@router.delete("/api/rooms/{room_id}", status_code=204)
async def close(room_id: Uuid, user: UserDep, rt: RuntimeDep) -> Response:
    await rooms.close(rt, room_id, user)
    return Response(status_code=204)


@router.get("/api/rooms/{room_id}/players", responses=S.responses(S.PlayerListOut))
async def players(room_id: Uuid, user: UserDep, rt: RuntimeDep, online: bool | None = None) -> JSON:
    items = await rooms.players(rt, room_id, user, online)
    return JSON({"players": items, "total": len(items)})


@router.post("/api/rooms/{room_id}/assets", status_code=201, responses=S.responses(S.AssetOut, 201))
async def upload(room_id: Uuid, request: Request, user: UserDep, rt: RuntimeDep,
                 file: Annotated[UploadFile, File()], name: Annotated[str | None, Form(max_length=200)] = None,
                 hidden: Annotated[bool, Form()] = False) -> JSON:
    for field, value in (("name", name), ("file.filename", file.filename)):
        if value and has_nul(value):
            raise ValidationFailed(f"{field}: {NUL_MESSAGE}", code=INVALID_TEXT,
                                   details=[{"field": field, "problem": NUL_MESSAGE, "limit": "nul"}])
    limit = rt.settings.max_upload_bytes
    # At most TABLEFORGE_MAX_CONCURRENT_DECODES files in memory and being checked at once; the others
    # wait (spooled on disk by the multipart parser), bounded, then 503 server_busy.
    async with rt.guards.decodes.slot():
        data = await file.read(limit + 1)
        if len(data) > limit:
            raise TooLarge(f"the file is over the {limit} byte limit", code="file_too_large")
        asset = await assets.upload(rt, user, room_id, name, file.filename, data, hidden)
        del data  # released before the slot is
    return JSON(asset, status_code=201)


@router.get("/api/rooms/{room_id}/assets", responses=S.responses(S.AssetListOut))
async def list_assets(room_id: Uuid, user: UserDep, rt: RuntimeDep) -> JSON:
    items = await assets.list_room(rt, user, room_id)
    return JSON({"assets": items, "total": len(items)})


@router.patch("/api/assets/{asset_id}", responses=S.responses(S.AssetOut))
async def patch_asset(asset_id: Uuid, body: AssetPatch, user: UserDep, rt: RuntimeDep) -> JSON:
    return JSON(await assets.set_hidden(rt, user, asset_id, body.hidden))


@router.delete("/api/assets/{asset_id}", status_code=204)
async def delete_asset(asset_id: Uuid, user: UserDep, rt: RuntimeDep) -> Response:
    await assets.delete(rt, user, asset_id)
    return Response(status_code=204)


@router.get("/assets/{sha256}.{ext}", response_class=Response, responses=S.IMAGE)
async def asset_file(sha256: str, ext: str, request: Request) -> Response:
    # No RuntimeDep: the settings are all this needs, and every dependency costs a resolution.
    found = assets.find_file_stat(request.app.state.runtime, sha256, ext)
    if found is None:
        raise NotFound("no such asset file", code="asset_not_found")
    path, st = found
    etag = f'"{sha256}"'
    # The bytes are whatever a member uploaded: the type is the one the server found (the extension
    # is the stored kind's), never sniffed (nosniff, added at the edge), and if someone opens the
    # URL as a page it is a sandboxed document that can run nothing and reach nothing.
    headers = {"Cache-Control": CACHE_IMMUTABLE, "ETag": etag, "Content-Security-Policy": ASSET_CSP,
               "Cross-Origin-Resource-Policy": "same-site"}
    inm = request.headers.get("if-none-match", "")
    if inm and (etag in [t.strip().removeprefix("W/") for t in inm.split(",")] or inm.strip() == "*"):
        return Response(status_code=304, headers=headers)
    files: AssetBytes = request.app.state.asset_bytes
    return await files.response(path, st, request.headers.get("range"), replies.MEDIA_TYPES[ext], headers)


async def _role(rt: RuntimeDep, room_id: str, user: dict[str, str]) -> str:
    async with rt.db.read() as conn:
        return await rooms.require_member(conn, room_id, user)


@router.post("/api/rooms/{room_id}/tokens", status_code=201, responses=S.responses(S.TokenChangeOut, 201))
async def add_token(room_id: Uuid, body: TokenIn, user: UserDep, rt: RuntimeDep) -> JSON:
    role = await _role(rt, room_id, user)
    token, version = await tokens.add(rt, user["id"], room_id, body.asset_id, body.x, body.y, body.rotation,
                                      body.scale, body.z_index, role=role,
                                      scene_id=str(uuid.UUID(body.scene_id)) if body.scene_id else None,
                                      hidden=body.hidden,
                                      fields={k: getattr(body, k) for k in CHARACTER_FIELDS})
    return JSON(token | {"room_version": version}, status_code=201)


@router.patch("/api/rooms/{room_id}/tokens/{token_id}", responses=S.responses(S.TokenChangeOut))
async def update_token(room_id: Uuid, token_id: Uuid, body: TokenPatch, user: UserDep,
                       rt: RuntimeDep) -> JSON:
    role = await _role(rt, room_id, user)
    values = body.model_dump(exclude_unset=True, exclude={"if_version"})
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        raise ValidationFailed("nothing to change: give x, y, rotation, scale, z_index, hidden or a character field",
                               code="nothing_to_change")
    token, version = await tokens.change(rt, user["id"], role, room_id, token_id, values, body.if_version)
    return JSON(token | {"room_version": version})


@router.delete("/api/rooms/{room_id}/tokens/{token_id}", status_code=200, responses=S.responses(S.TokenRemovedOut))
async def remove_token(room_id: Uuid, token_id: Uuid, user: UserDep, rt: RuntimeDep,
                       if_version: Annotated[int | None, Query(ge=0, le=limits.VERSION_MAX)] = None) -> JSON:
    role = await _role(rt, room_id, user)
    version = await tokens.remove(rt, user["id"], role, room_id, token_id, if_version)
    return JSON({"version": version, "room_version": version})

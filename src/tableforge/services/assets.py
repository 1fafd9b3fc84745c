"""Uploaded images: checked by content with Pillow, stored content-addressed under the data dir."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tableforge.db.changes import AddAsset, RemoveAsset, SetAssetHidden
from tableforge.db.schema import game_assets
from tableforge.domain.errors import Forbidden, NotFound, TooLarge, UnsupportedMedia, ValidationFailed
from tableforge.domain.roles import GM, require_actor, require_gm
from tableforge.services import replies, rooms
from tableforge.services.runtime import Runtime

_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}

# Asset metadata is cached for an hour (kind "asset"): rows never change after the upload, and the
# two writes that matter — upload and delete — are here and invalidate after they commit.


def asset_key(asset_id: str) -> str:
    return f"asset:{asset_id}"


def room_assets_key(room_id: str) -> str:
    """The ids of a room's assets, in upload order."""
    return f"room-assets:{room_id}"


async def metadata_many(rt: Runtime, asset_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Assets by id (the public shape, with `room_id` and `uploader_id`): one MGET for what tier 1
    lacks, one query for the misses, one pipelined write. Unknown ids are left out."""

    async def load(keys: list[str]) -> dict[str, dict[str, Any]]:
        ids = [key.split(":", 1)[1] for key in keys]
        async with rt.db.read() as conn:
            rows = (await conn.execute(sa.select(game_assets).where(game_assets.c.id.in_(ids)))).mappings().all()
        return {asset_key(str(r["id"])): replies.asset(r) for r in rows}

    found = await rt.cache.get_many_or_load([asset_key(i) for i in asset_ids], load, kind="asset")
    return {key.split(":", 1)[1]: value for key, value in found.items()}


async def metadata(rt: Runtime, asset_id: str) -> dict[str, Any] | None:
    return (await metadata_many(rt, [asset_id])).get(asset_id)


async def _room_asset_ids(rt: Runtime, room_id: str) -> list[str]:
    async def load() -> list[str]:
        async with rt.db.read() as conn:
            return [str(i) for i in (await conn.execute(
                sa.select(game_assets.c.id).where(game_assets.c.room_id == room_id)
                .order_by(game_assets.c.created_at, game_assets.c.id))).scalars()]

    return await rt.cache.get_or_load(room_assets_key(room_id), load, kind="asset")


@dataclass(frozen=True, slots=True)
class ImageInfo:
    kind: str
    width: int
    height: int
    sha256: str


# Markup that a browser would run if it ever took the file for a page. An image's own data can
# hold such bytes only by intent (a PNG/JPEG + HTML "polyglot" keeps them in a text chunk or a
# comment); in compressed pixels, which are noise, a given case-insensitive tag of 5 bytes or more
# turns up about once in 10^11 bytes. Served files carry nosniff and a sandboxing CSP anyway (routes/rooms.py);
# refusing these keeps them from ever being stored, so a proxy or CDN that serves the asset
# directory itself cannot be made to serve a page either. XMP metadata (`<x:xmpmeta`, `<rdf:`) is
# not markup a browser runs and passes.
_MARKUP = re.compile(rb"<(?:!doctype\s+html|html|head|body|script|iframe|object|embed|meta\s|link\s|form|"
                     rb"a\s+href)|javascript:", re.IGNORECASE)


def refuse_markup(data: bytes) -> None:
    if _MARKUP.search(data):
        raise UnsupportedMedia("the image carries HTML or script markup; re-save it in an image editor",
                               code="polyglot_image")


def inspect_image(data: bytes, max_pixels: int) -> ImageInfo:
    """What the bytes really are (never the file name or the client's content type)."""
    refuse_markup(data)
    # Pillow on the first upload, not at start-up: ~2.5 MB of RSS an idle server does not need.
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            kind = _FORMATS.get(img.format or "")
            if kind is None:
                raise UnsupportedMedia(f"{img.format or 'this'} images are not supported; use PNG, JPEG, WebP or GIF",
                                       code="unsupported_image")
            width, height = img.size
            if width * height > max_pixels:
                raise TooLarge(f"the image is {width}x{height}; at most {max_pixels} pixels", code="image_too_large")
            img.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise UnsupportedMedia("the file is not a PNG, JPEG, WebP or GIF image", code="unsupported_image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValidationFailed(f"the image is damaged: {exc}", code="corrupt_image") from None
    return ImageInfo(kind, width, height, hashlib.sha256(data).hexdigest())


def file_path(rt: Runtime, sha256: str, kind: str) -> Path:
    return rt.settings.assets_dir / sha256[:2] / f"{sha256}.{replies.EXTENSIONS[kind]}"


def _store_file(path: Path, data: bytes) -> None:
    if path.exists():
        # Content-addressed: the same bytes are already there. A fresh time restarts the asset
        # collector's grace period, as for a new file (services/maintenance/asset_gc.py).
        try:
            os.utime(path)
            return
        except FileNotFoundError:
            pass  # the collector set it aside just now: write it again
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per write: two uploads of the same bytes at once must not share a temp file.
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.{secrets.token_hex(6)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


async def upload(rt: Runtime, user: dict[str, Any], room_id: str, name: str | None, filename: str | None,
                 data: bytes, hidden: bool = False) -> dict[str, Any]:
    """`hidden`: on the GM layer (GMs only): players never see it, nor the tokens showing it."""
    if len(data) > rt.settings.max_upload_bytes:
        raise TooLarge(f"the file is over the {rt.settings.max_upload_bytes} byte limit", code="file_too_large")
    if not data:
        raise ValidationFailed("the file is empty", code="empty_file")
    async with rt.db.read() as conn:
        role = await rooms.require_member(conn, room_id, user)
    require_actor(role)
    if hidden:
        require_gm(role)
    info = await asyncio.to_thread(inspect_image, data, rt.settings.max_image_pixels)
    path = file_path(rt, info.sha256, info.kind)
    await asyncio.to_thread(_store_file, path, data)
    label = (name or filename or "image").strip()[:200] or "image"
    row = {"id": replies.new_id(), "room_id": room_id, "uploader_id": user["id"], "name": label,
           "type": info.kind, "sha256": info.sha256, "file_path": str(path.relative_to(rt.settings.data_dir)),
           "width": info.width, "height": info.height, "size": len(data), "created_at": replies.now(),
           "hidden": hidden}
    asset = replies.asset(row)
    stored = await rt.events.append(room_id, AddAsset(user["id"], row, asset))
    await rt.cache.delete(room_assets_key(room_id), asset_key(row["id"]))
    await rt.hub.publish(room_id, stored.version, stored.ts, None, stored.body, stored.routing)
    return asset


async def list_room(rt: Runtime, user: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    """The membership check reads the database (joins are not cached); the list and the rows come
    from the cache: the id list per room, then the metadata in one batch."""
    async with rt.db.read() as conn:
        role = await rooms.require_member(conn, room_id, user)
    ids = await _room_asset_ids(rt, room_id)
    found = await metadata_many(rt, ids)
    return [found[i] for i in ids if i in found and (role == GM or not found[i].get("hidden"))]


async def _member_asset(rt: Runtime, user: dict[str, Any], asset_id: str) -> tuple[Any, str, str]:
    """The asset's row, its room and the caller's role there (a member's only); an asset hidden from a
    player is `asset_not_found`, the same answer as one that does not exist."""
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(game_assets).where(game_assets.c.id == asset_id))).mappings().first()
        if row is None:
            raise NotFound("no such asset", code="asset_not_found")
        room_id = str(row["room_id"])
        role = await rooms.require_member(conn, room_id, user)
    if role != GM and row["hidden"]:
        raise NotFound("no such asset", code="asset_not_found")  # what players may not know of
    return row, room_id, role


async def set_hidden(rt: Runtime, user: dict[str, Any], asset_id: str, hidden: bool) -> dict[str, Any]:
    """`PATCH /api/assets/{id} {hidden}` (GMs): for players the asset (and its tokens) goes or comes."""
    row, room_id, role = await _member_asset(rt, user, asset_id)
    require_gm(role)
    stored = await rt.events.append(room_id, SetAssetHidden(user["id"], asset_id, hidden, replies.asset(row)))
    await rt.cache.delete(room_assets_key(room_id), asset_key(asset_id))
    await rt.hub.publish(room_id, stored.version, stored.ts, None, stored.body, stored.routing)
    return stored.result


async def delete(rt: Runtime, user: dict[str, Any], asset_id: str) -> None:
    """Removes the asset and every token showing it, one event each, in one transaction."""
    row, room_id, role = await _member_asset(rt, user, asset_id)
    require_actor(role)
    if role != GM and str(row["uploader_id"]) != user["id"]:
        raise Forbidden("only the uploader or the GM may delete an asset", code="not_uploader")
    removed = await rt.events.append(room_id, RemoveAsset(user["id"], asset_id, row["sha256"]))
    await rt.cache.delete(room_assets_key(room_id), asset_key(asset_id))
    for event in removed.all():
        await rt.hub.publish(room_id, event.version, event.ts, None, event.body, event.routing)
    keep_file = removed.result
    if not keep_file:
        path = file_path(rt, row["sha256"], row["type"])
        await asyncio.to_thread(path.unlink, missing_ok=True)


_KINDS = {v: k for k, v in replies.EXTENSIONS.items()}
_HEX = frozenset("0123456789abcdef")


def find_file_stat(rt: Runtime, sha256: str, ext: str) -> tuple[Path, os.stat_result] | None:
    """The stored file for a URL's name and its stat (one stat, on the event loop: as cheap as a
    thread hop's own bookkeeping), or None when there is no such regular file."""
    kind = _KINDS.get(ext)
    if kind is None or len(sha256) != 64 or not _HEX.issuperset(sha256):
        return None
    path = file_path(rt, sha256, kind)
    try:
        st = path.stat()
    except (OSError, ValueError):  # what Path.is_file() takes for "no file"
        return None
    return (path, st) if stat.S_ISREG(st.st_mode) else None

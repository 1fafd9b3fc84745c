"""Reading and checking a room file before anything is written: the manifest, every room document
(types by msgspec, then what types cannot say: unique ids, references that resolve, grids, fog,
templates, selectors) and every image (sha256 against the bytes, then the upload checks)."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson

from tableforge.domain import limits
from tableforge.domain import scenes as scene_rules
from tableforge.domain.errors import AppError
from tableforge.domain.fog import FogError, parse_fog
from tableforge.domain.system_template import check_template
from tableforge.services.assets import inspect_image
from tableforge.services.transfer import archive
from tableforge.services.transfer import document as doc
from tableforge.services.transfer.archive import ArchiveInvalid

ROLL_MAX_BYTES = 64 * 1024


@dataclass
class Checked:
    manifest: doc.Manifest
    rooms: list[doc.Room]
    staged: dict[str, Path] = field(default_factory=dict)  # sha256 -> checked bytes in the staging dir
    images: dict[str, tuple[str, int, int, int]] = field(default_factory=dict)  # sha256 -> kind, w, h, size


def _decode(data: bytes, kind: type[Any], where: str) -> Any:
    try:
        return msgspec.json.decode(data, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ArchiveInvalid(f"{where}: {exc}") from None
    except RecursionError:
        raise ArchiveInvalid(f"{where}: nested too deeply") from None


def _unique(ids: list[str], what: str, where: str) -> set[str]:
    seen = set(ids)
    if len(seen) != len(ids):
        raise ArchiveInvalid(f"{where}: two {what} have the same id")
    return seen


def _check_room(room: doc.Room, files: dict[str, str], where: str) -> None:
    scene_ids = _unique([s.id for s in room.scenes], "scenes", where)
    asset_ids = _unique([a.id for a in room.assets], "assets", where)
    _unique([t.id for t in room.tokens], "tokens", where)
    _unique([m.id for m in room.messages], "messages", where)
    if len({m.username.lower() for m in room.members}) != len(room.members):
        raise ArchiveInvalid(f"{where}: a member is listed twice")
    if room.players_scene not in scene_ids:
        raise ArchiveInvalid(f"{where}: the players' scene {room.players_scene} is not one of the room's scenes")
    for asset in room.assets:
        if files.get(asset.sha256) != asset.type:
            raise ArchiveInvalid(f"{where}: asset {asset.id} names the image {asset.sha256}.{asset.type}, "
                                 "which the file does not hold")
    for scene in room.scenes:
        if scene.map_asset is not None and scene.map_asset not in asset_ids:
            raise ArchiveInvalid(f"{where}: scene {scene.id}'s map {scene.map_asset} is not one of the room's assets")
        try:
            scene_rules.grid(None, scene.grid)
            parse_fog(scene.fog)
        except FogError as exc:
            raise ArchiveInvalid(f"{where}: scene {scene.id}: {exc}") from None
        except AppError as exc:
            raise ArchiveInvalid(f"{where}: scene {scene.id}: {exc.message}") from None
        except (AttributeError, TypeError, ValueError) as exc:  # fog shapes of the wrong shape
            raise ArchiveInvalid(f"{where}: scene {scene.id}: bad fog ({exc})") from None
    for token in room.tokens:
        if token.asset not in asset_ids or token.scene not in scene_ids:
            raise ArchiveInvalid(f"{where}: token {token.id} refers to an asset or scene the room does not have")
    for message in room.messages:
        if message.version > room.version:
            raise ArchiveInvalid(f"{where}: message {message.id} is newer than the room")
        if message.roll is not None and len(orjson.dumps(message.roll)) > ROLL_MAX_BYTES:
            raise ArchiveInvalid(f"{where}: message {message.id}'s roll is over {ROLL_MAX_BYTES} bytes")
        for term in message.audience or ():
            ok = (term in ("g", "p") or (term.startswith("g@") and term[2:] in scene_ids)
                  or (term.startswith("u:") and 3 <= len(term) - 2 <= limits.USERNAME_MAX))
            if not ok:
                raise ArchiveInvalid(f"{where}: message {message.id} has a bad audience term {term[:80]!r}")
    system = room.system
    if system is not None and not system.official:
        if system.template is None:
            raise ArchiveInvalid(f"{where}: the custom game system {system.name!r} has no template")
        if len(orjson.dumps(system.template)) > limits.TEMPLATE_MAX_BYTES:
            raise ArchiveInvalid(f"{where}: the game system's template is over {limits.TEMPLATE_MAX_BYTES} bytes")
        try:
            check_template(system.template)
        except AppError as exc:
            raise ArchiveInvalid(f"{where}: the game system's template: {exc.message}") from None


def read_documents(reader: archive.Reader) -> Checked:
    manifest: doc.Manifest = _decode(reader.read(archive.MANIFEST, archive.MANIFEST_MAX_BYTES), doc.Manifest,
                                     archive.MANIFEST)
    if manifest.format_version != doc.FORMAT_VERSION:
        raise ArchiveInvalid(f"the file is format version {manifest.format_version}; this server reads version "
                             f"{doc.FORMAT_VERSION} (export it again with a matching TableForge)",
                             code="room_file_version")
    listed = [r.file for r in manifest.rooms]
    if len(set(listed)) != len(listed) or set(listed) != reader.rooms:
        raise ArchiveInvalid("manifest.json's rooms do not match the rooms/ entries of the file")
    files: dict[str, str] = {f.sha256: f.type for f in manifest.files}
    if len(files) != len(manifest.files) or set(files) != set(reader.assets):
        raise ArchiveInvalid("manifest.json's files do not match the assets/ entries of the file")
    for sha, name in reader.assets.items():
        if archive.KIND_OF_EXT[name.rsplit(".", 1)[1]] != files[sha]:
            raise ArchiveInvalid(f"{name}: its extension does not match its type in manifest.json")
    rooms = []
    for entry in manifest.rooms:
        room: doc.Room = _decode(reader.read(entry.file, reader.limits.max_json_bytes), doc.Room, entry.file)
        _check_room(room, files, entry.file)
        rooms.append(room)
    return Checked(manifest, rooms)


def stage_images(reader: archive.Reader, checked: Checked, staging: Path, max_pixels: int) -> None:
    """Every image, checked like an upload and by its sha256, copied into `staging` (nothing is put in
    the asset store until every one has passed)."""
    for entry in checked.manifest.files:
        name = reader.assets[entry.sha256]
        data = reader.read(name, reader.limits.max_asset_bytes)
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise ArchiveInvalid(f"{name}: the bytes do not match their sha256", code="bad_asset_hash")
        try:
            info = inspect_image(data, max_pixels)
        except AppError as exc:
            raise ArchiveInvalid(f"{name}: {exc.message}", code=exc.code) from None
        if info.kind != entry.type:
            raise ArchiveInvalid(f"{name}: the file is a {info.kind} image, not {entry.type}")
        path = staging / f"{entry.sha256}.{secrets.token_hex(4)}"
        path.write_bytes(data)
        checked.staged[entry.sha256] = path
        checked.images[entry.sha256] = (info.kind, info.width, info.height, len(data))


def store_images(checked: Checked, assets_dir: Path) -> int:
    """Move the staged images into the content-addressed store; returns how many were new there."""
    added = 0
    for sha, staged in checked.staged.items():
        kind = checked.images[sha][0]
        target = assets_dir / sha[:2] / f"{sha}.{archive.EXTENSIONS[kind]}"
        if target.exists():
            os.utime(target)  # as an upload of known bytes: restart the collector's grace period
            staged.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
        added += 1
    return added

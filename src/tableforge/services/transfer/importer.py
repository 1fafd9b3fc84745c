"""`tableforge import`: a room file into the database the settings name, every room as a new room.

Nothing is written until the whole file has passed (services/transfer/checks.py) and every room has
a GM here; then the images go into the asset store and each room is inserted in its own transaction
(all of the room or none of it). Every row gets a new id, so a file can never overwrite a room, and
importing one file twice makes two rooms. Members are mapped by username (case-insensitively); one
with no account here is left out and listed in the summary, and what they wrote stays without an
author; no account is ever created by an import (a file must not be able to claim names)."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.config import Settings
from tableforge.db.engine import Database
from tableforge.db.schema import (
    board_tokens,
    game_assets,
    game_rooms,
    game_systems,
    room_messages,
    room_players,
    scenes,
    users,
)
from tableforge.domain import scenes as scene_rules
from tableforge.domain.errors import NotFound, ValidationFailed
from tableforge.domain.fog import HIDDEN, parse_fog
from tableforge.domain.roles import GM
from tableforge.services import rooms as room_service
from tableforge.services.transfer import archive, checks
from tableforge.services.transfer import document as doc

_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Users:
    """Usernames (lower-cased) of the file that have an account here -> (id, username as stored)."""
    found: dict[str, tuple[str, str]]

    def id(self, name: str | None) -> str | None:
        hit = self.found.get(name.lower()) if name else None
        return hit[0] if hit else None


async def _users(db: Database, names: set[str]) -> Users:
    lowered = sorted({n.lower() for n in names})
    found: dict[str, tuple[str, str]] = {}
    async with db.read() as conn:
        for start in range(0, len(lowered), _BATCH):
            rows = await conn.execute(sa.select(users.c.id, users.c.username)
                                      .where(sa.func.lower(users.c.username).in_(lowered[start:start + _BATCH])))
            found.update({str(n).lower(): (str(i), str(n)) for i, n in rows})
    return Users(found)


def _names_of(room: doc.Room) -> set[str]:
    names = {room.gm, *(m.username for m in room.members)}
    names.update(a.uploader for a in room.assets if a.uploader)
    names.update(t.owner for t in room.tokens if t.owner)
    for m in room.messages:
        if m.user:
            names.add(m.user)
        names.update(m.to or ())
        names.update(t[2:] for t in m.audience or () if t.startswith("u:"))
    return names


def _audience(terms: list[str] | None, scene_ids: dict[str, str], people: Users) -> str | None:
    if terms is None:
        return None
    out = []
    for term in terms:
        if term.startswith("g@"):
            out.append("g@" + scene_ids[term[2:]])
        elif term.startswith("u:"):
            user_id = people.id(term[2:])
            if user_id is not None:
                out.append("u:" + user_id)
        else:
            out.append(term)
    # A selector emptied by members who are not here must not become None (everyone): it names a
    # user that exists nowhere, so the message stays as private as it was.
    return ";".join(dict.fromkeys(out)) or f"u:{uuid.uuid4()}"


async def _system(conn: AsyncConnection, ref: doc.SystemRef | None, gm_id: str) -> tuple[str | None, str]:
    if ref is None:
        return None, "none"
    if ref.official:
        found = (await conn.execute(sa.select(game_systems.c.id).where(
            game_systems.c.is_official, game_systems.c.name == ref.name).limit(1))).scalar()
        return (str(found), "official") if found else (None, f"official system {ref.name!r} not on this server")
    rows = (await conn.execute(sa.select(game_systems.c.id, game_systems.c.template).where(
        game_systems.c.owner_id == gm_id, game_systems.c.name == ref.name))).all()
    for system_id, template in rows:
        if template == ref.template:
            return str(system_id), "custom, reused"
    now = datetime.now(UTC)
    system_id = str(uuid.uuid4())
    await conn.execute(sa.insert(game_systems).values(
        id=system_id, owner_id=gm_id, name=ref.name, description=ref.description, category=ref.category,
        complexity=ref.complexity, is_public=False, is_official=False, template=ref.template,
        created_at=now, updated_at=now))
    return system_id, "custom, created (private)"


async def _insert(conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), _BATCH):
        await conn.execute(sa.insert(table), rows[start:start + _BATCH])


async def _write_room(conn: AsyncConnection, room: doc.Room, gm_id: str, people: Users,
                      images: dict[str, tuple[str, int, int, int]], data_dir: Path, assets_dir: Path
                      ) -> dict[str, Any]:
    room_id = str(uuid.uuid4())
    scene_ids = {s.id: str(uuid.uuid4()) for s in room.scenes}
    asset_ids = {a.id: str(uuid.uuid4()) for a in room.assets}
    fogs = {s.id: parse_fog(s.fog) for s in room.scenes}
    hidden_assets = {a.id for a in room.assets if a.hidden}
    system_id, system_note = await _system(conn, room.system, gm_id)
    await conn.execute(sa.insert(game_rooms).values(
        id=room_id, name=room.name, gm_id=gm_id, game_system_id=system_id,
        invite_code=room_service._invite_code(),
        spectator_invite_code=room_service._invite_code(room_service.SPECTATOR_CODE_LENGTH),
        is_active=room.is_active, version=room.version, created_at=room.created_at,
        players_scene_id=scene_ids[room.players_scene],
        fog_free=not any(f.shapes or f.base == HIDDEN for f in fogs.values())))
    members: dict[str, dict[str, Any]] = {}
    skipped = []
    for m in room.members:
        user_id = people.id(m.username)
        if user_id is None:
            skipped.append(m.username)
        elif user_id != gm_id:
            members[user_id] = {"room_id": room_id, "user_id": user_id, "role": m.role, "is_online": False,
                                "joined_at": m.joined_at}
    joined = next((m.joined_at for m in room.members if people.id(m.username) == gm_id), room.created_at)
    members[gm_id] = {"room_id": room_id, "user_id": gm_id, "role": GM, "is_online": False, "joined_at": joined}
    await _insert(conn, room_players, list(members.values()))
    asset_rows = []
    for a in room.assets:
        kind, width, height, size = images[a.sha256]  # what the bytes are, not what the document says
        path = assets_dir / a.sha256[:2] / f"{a.sha256}.{archive.EXTENSIONS[kind]}"
        asset_rows.append({"id": asset_ids[a.id], "room_id": room_id, "uploader_id": people.id(a.uploader),
                           "name": a.name or "image", "type": kind, "sha256": a.sha256,
                           "file_path": str(path.relative_to(data_dir)), "width": width, "height": height,
                           "size": size, "created_at": a.created_at, "hidden": a.hidden})
    await _insert(conn, game_assets, asset_rows)
    await _insert(conn, scenes, [
        {"id": scene_ids[s.id], "room_id": room_id, "name": s.name, "position": s.position,
         "map_asset_id": asset_ids[s.map_asset] if s.map_asset else None,
         "grid": scene_rules.grid(None, s.grid), "fog": fogs[s.id].to_json(),
         "fog_count": len(fogs[s.id].shapes), "fog_version": s.fog_version, "created_at": s.created_at}
        for s in room.scenes])
    await _insert(conn, board_tokens, [
        {"id": str(uuid.uuid4()), "room_id": room_id, "asset_id": asset_ids[t.asset], "scene_id": scene_ids[t.scene],
         "owner_id": people.id(t.owner), "x": t.x, "y": t.y, "rotation": t.rotation, "scale": t.scale,
         "z_index": t.z_index, "version": t.version, "created_at": t.created_at, "hidden": t.hidden,
         # recomputed, never trusted: whether players see a token depends on these two
         "fogged": fogs[t.scene].fogged(t.x, t.y), "asset_hidden": t.asset in hidden_assets}
        for t in room.tokens])
    await _insert(conn, room_messages, [
        {"id": str(uuid.uuid4()), "room_id": room_id, "user_id": people.id(m.user), "kind": m.kind,
         "text": m.text, "roll": m.roll, "version": m.version, "created_at": m.created_at,
         "visibility": m.visibility, "audience": _audience(m.audience, scene_ids, people),
         "to_users": [u for u in map(people.id, m.to) if u] or None if m.to else None}
        for m in room.messages])
    return {"source_id": room.id, "id": room_id, "name": room.name, "version": room.version,
            "scenes": len(room.scenes), "tokens": len(room.tokens), "assets": len(room.assets),
            "messages": len(room.messages), "members": len(members), "skipped_members": sorted(skipped),
            "system": system_note}


async def import_rooms(db: Database, settings: Settings, path: Path, owner: str | None, dry_run: bool,
                       limits: archive.Limits, *, others: bool = True) -> dict[str, Any]:
    """`others`: map the file's other usernames to accounts here (the operator's CLI). Over HTTP a
    user imports only as themselves: a file they made up must not put words in other users' mouths
    nor make them members of a room, so every other name counts as absent."""
    reader = archive.Reader(path, limits)
    staging = settings.data_dir / f".import-{uuid.uuid4().hex[:12]}"
    try:
        checked = await asyncio.to_thread(checks.read_documents, reader)
        names: set[str] = set().union(*(_names_of(r) for r in checked.rooms))
        if owner is not None:
            names.add(owner)
        people = await _users(db, names if others else {owner} if owner else set())
        owner_id = people.id(owner) if owner is not None else None
        if owner is not None and owner_id is None:
            raise NotFound(f"--owner: there is no user {owner!r} here", code="user_not_found")
        gms = []
        for room in checked.rooms:
            gm_id = owner_id or people.id(room.gm)
            if gm_id is None:
                raise ValidationFailed(f"room {room.name!r}: its GM {room.gm!r} has no account here; create it "
                                       "(`tableforge users create`) or pass --owner USERNAME", code="no_gm_here")
            gms.append(gm_id)
        await asyncio.to_thread(staging.mkdir, parents=True)
        await asyncio.to_thread(checks.stage_images, reader, checked, staging, settings.max_image_pixels)
        if dry_run:
            missing = sorted({n for n in names if people.id(n) is None})
            return {"dry_run": True, "rooms": [{"source_id": r.id, "name": r.name, "scenes": len(r.scenes),
                                                "tokens": len(r.tokens), "assets": len(r.assets),
                                                "messages": len(r.messages)} for r in checked.rooms],
                    "files": len(checked.staged), "users_missing": missing}
        added = await asyncio.to_thread(checks.store_images, checked, settings.assets_dir)
        done = []
        for room, gm_id in zip(checked.rooms, gms, strict=True):
            for attempt in range(5):
                try:
                    async with db.write() as conn:
                        done.append(await _write_room(conn, room, gm_id, people, checked.images,
                                                      settings.data_dir, settings.assets_dir))
                    break
                except IntegrityError:
                    if attempt == 4:  # not an invite code collision (1 in 32^10) five times over
                        raise
        return {"dry_run": False, "rooms": done, "files": len(checked.staged), "files_added": added,
                "users_missing": sorted({n for n in names if people.id(n) is None})}
    finally:
        reader.close()
        shutil.rmtree(staging, ignore_errors=True)

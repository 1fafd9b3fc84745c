"""`tableforge export`: rooms to one room file, read from one snapshot of the database.

What travels: the room (name, version, open or closed), its members by username and role, its game
system (official by name, custom with its template), scenes (grid, fog, the players' scene), assets
(metadata, hidden, the bytes once per sha256), tokens (hidden, scene) and the whole chat and dice
log with each message's visibility and audience. What does not: the event history behind
`join {since}` (the importing server starts the room's log afresh at the exported version, so its
clients resynchronise from a snapshot, as after retention trims a log), invite codes (new ones are
drawn: the old ones still open the old room), online flags and the system's ratings and counts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db.engine import Database
from tableforge.db.migrate import head_revision
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
from tableforge.domain.errors import NotFound
from tableforge.domain.wire import EXTENSIONS
from tableforge.services.transfer import archive
from tableforge.services.transfer import document as doc


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


async def _usernames(conn: AsyncConnection) -> dict[str, str]:
    rows = await conn.execute(sa.select(users.c.id, users.c.username))
    return {str(i): str(n) for i, n in rows}


def _terms(audience: str | None, names: dict[str, str], scene_ids: set[str]) -> list[str] | None:
    """A selector with usernames for user ids; a user or scene deleted since is left out (narrower,
    never wider: the importer keeps an emptied selector matching no one)."""
    if audience is None:
        return None
    out = []
    for term in audience.split(";"):
        if term.startswith("u:"):
            if term[2:] in names:
                out.append("u:" + names[term[2:]])
        elif term.startswith("g@"):
            if term[2:] in scene_ids:
                out.append(term)
        elif term:
            out.append(term)
    return out


async def _room(conn: AsyncConnection, room: Any, names: dict[str, str]) -> doc.Room:
    rid = room["id"]
    system = None
    if room["game_system_id"] is not None:
        row = (await conn.execute(sa.select(game_systems).where(game_systems.c.id == room["game_system_id"]))
               ).mappings().first()
        if row is not None:
            system = doc.SystemRef(name=row["name"], official=bool(row["is_official"]), category=row["category"],
                                   complexity=row["complexity"], description=row["description"],
                                   template=None if row["is_official"] else row["template"])
    members = [doc.Member(username=names[str(r["user_id"])], role=r["role"], joined_at=r["joined_at"])
               for r in (await conn.execute(sa.select(room_players).where(room_players.c.room_id == rid)
                                            .order_by(room_players.c.joined_at))).mappings()]
    scene_rows = (await conn.execute(sa.select(scenes).where(scenes.c.room_id == rid)
                                     .order_by(scenes.c.position, scenes.c.created_at))).mappings().all()
    asset_rows = (await conn.execute(sa.select(game_assets).where(game_assets.c.room_id == rid)
                                     .order_by(game_assets.c.created_at, game_assets.c.id))).mappings().all()
    token_rows = (await conn.execute(sa.select(board_tokens).where(board_tokens.c.room_id == rid)
                                     .order_by(board_tokens.c.z_index, board_tokens.c.created_at))).mappings().all()
    message_rows = (await conn.execute(sa.select(room_messages).where(room_messages.c.room_id == rid)
                                       .order_by(room_messages.c.version))).mappings().all()
    scene_ids = {str(s["id"]) for s in scene_rows}
    return doc.Room(
        id=str(rid), name=room["name"], version=int(room["version"]), created_at=room["created_at"],
        is_active=bool(room["is_active"]), gm=names[str(room["gm_id"])],
        players_scene=str(room["players_scene_id"]), system=system, members=members,
        scenes=[doc.Scene(id=str(s["id"]), name=s["name"], position=int(s["position"]),
                          map_asset=_s(s["map_asset_id"]), grid=s["grid"], fog=s["fog"] or {},
                          fog_version=int(s["fog_version"]), created_at=s["created_at"]) for s in scene_rows],
        assets=[doc.Asset(id=str(a["id"]), name=a["name"], type=a["type"], sha256=a["sha256"], width=a["width"],
                          height=a["height"], size=a["size"], created_at=a["created_at"], hidden=bool(a["hidden"]),
                          uploader=names.get(str(a["uploader_id"]))) for a in asset_rows],
        tokens=[doc.Token(id=str(t["id"]), asset=str(t["asset_id"]), scene=str(t["scene_id"]),
                          owner=names.get(str(t["owner_id"])), x=t["x"], y=t["y"], rotation=t["rotation"],
                          scale=t["scale"], z_index=t["z_index"], version=int(t["version"]),
                          created_at=t["created_at"], hidden=bool(t["hidden"])) for t in token_rows],
        messages=[doc.Message(id=str(m["id"]), user=names.get(str(m["user_id"])), kind=m["kind"], text=m["text"],
                              roll=m["roll"], version=int(m["version"]), created_at=m["created_at"],
                              visibility=m["visibility"] or "room", audience=_terms(m["audience"], names, scene_ids),
                              to=[names[u] for u in m["to_users"] if u in names] if m["to_users"] else None)
                  for m in message_rows],
    )


async def export_rooms(db: Database, assets_dir: Path, room_ids: list[str] | None, output: Path
                       ) -> dict[str, Any]:
    """Write the rooms (`None`: every room) to `output` (via a temporary file, renamed when complete)."""
    rooms: list[doc.Room] = []
    async with db.read_transaction() as conn:  # one snapshot for every room
        names = await _usernames(conn)
        query = sa.select(game_rooms).order_by(game_rooms.c.created_at, game_rooms.c.id)
        if room_ids is not None:
            query = query.where(game_rooms.c.id.in_(room_ids))
        found = (await conn.execute(query)).mappings().all()
        missing = sorted(set(room_ids or ()) - {str(r["id"]) for r in found})
        if missing:
            raise NotFound(f"no such room: {', '.join(missing)}", code="room_not_found")
        if not found:
            raise NotFound("there are no rooms to export", code="room_not_found")
        for row in found:
            rooms.append(await _room(conn, row, names))
    files: dict[str, doc.AssetEntry] = {}
    for room in rooms:
        for asset in room.assets:
            files.setdefault(asset.sha256, doc.AssetEntry(sha256=asset.sha256, type=asset.type, size=asset.size))
    manifest = doc.Manifest(
        format=doc.FORMAT, format_version=doc.FORMAT_VERSION, schema_revision=head_revision(),
        exported_at=datetime.now(UTC), source=db.dialect,  # type: ignore[arg-type]
        rooms=[doc.RoomEntry(file=f"rooms/{n}.json", id=r.id, name=r.name) for n, r in enumerate(rooms)],
        files=list(files.values()))
    size = await asyncio.to_thread(_write, output, manifest, rooms, list(files.values()), assets_dir)
    return {"path": str(output), "bytes": size, "rooms": [
        {"id": r.id, "name": r.name, "scenes": len(r.scenes), "tokens": len(r.tokens), "assets": len(r.assets),
         "messages": len(r.messages), "members": len(r.members)} for r in rooms], "files": len(files)}


def _write(output: Path, manifest: doc.Manifest, rooms: list[doc.Room], files: list[doc.AssetEntry],
           assets_dir: Path) -> int:
    """The zip, in a temporary file renamed when complete (an interrupted export leaves no room file)."""
    tmp = output.with_name(f".{output.name}.partial")
    try:
        with tmp.open("wb") as handle:
            writer = archive.Writer(handle)
            writer.json(archive.MANIFEST, doc.encode(manifest))
            for n, room in enumerate(rooms):
                writer.json(f"rooms/{n}.json", doc.encode(room))
            for entry in files:
                source_file = assets_dir / entry.sha256[:2] / f"{entry.sha256}.{EXTENSIONS[entry.type]}"
                if not source_file.is_file():
                    raise NotFound(f"the image {entry.sha256} is missing from the asset store",
                                   code="asset_file_missing")
                writer.asset(archive.asset_name(entry.sha256, entry.type), source_file)
            writer.close()
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    return output.stat().st_size

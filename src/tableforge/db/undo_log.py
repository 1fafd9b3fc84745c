"""Undo: a user's last token change in a room, inverted as an ordinary change of its kind.

The undo history is the room's event log: each undoable change stores, with its event, who may undo
it and what undoing it needs (`room_events.undo_by`, `.undo`; db/undo_entry.py). So it is the same
on every instance, survives restarts, and is bounded with the room's history (pruned as it grows);
nothing is kept in memory or in Redis, and the hot move pays no extra round trip.

Undoing, in one transaction (TransactionalEventLog, on both databases; undo is rare):
1. the room row is locked first, as every change locks it, so undos and changes serialize;
2. the caller's last UNDO_DEPTH undoable changes in the room are read, newest first; the newest one
   not undone yet is the one (none: `nothing_to_undo`);
3. its inverse is applied by the forward change's own code (db/board_log.py), so the guards and
   their order are the forward action's: a token the caller may not see is `token_not_found`, not
   theirs `not_token_owner`, and so on, before the version is compared; `if_version` is the version
   the change gave the token, and a different one means someone else changed it since
   (`undo_conflict`). The inverse is stored and published as an ordinary event of its kind, and is
   itself not undoable (undoing an undo is not a redo);
4. the entry is cleared; the caller's earlier change that the undone one directly followed (same
   token, its version the undone one's base) moves to the version the inverse produced, so the next undo goes on
   back through the caller's own changes, and stops at anyone else's.
A refusal raises `Refused`; the event log clears the entry in a second transaction (the first rolled
back), so the next undo goes to the change before, and raises the error.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db import board_log
from tableforge.db.changes import (
    ChangeConditions,
    MoveToken,
    RemoveToken,
    SetBar,
    StoredEvent,
    UndoLast,
    UpdateToken,
)
from tableforge.db.engine import Database
from tableforge.db.log_store import FogCache, next_versions, store
from tableforge.db.schema import board_tokens, game_assets, game_rooms, room_events, scenes
from tableforge.db.token_views import routed
from tableforge.db.undo_entry import Entry
from tableforge.domain import events as ev
from tableforge.domain import wire
from tableforge.domain.errors import AppError, Conflict, Forbidden, NotFound, Unavailable

UNDO_DEPTH = 20  # undo reaches back over the caller's last 20 undoable changes in the room
_GM_FIELDS = frozenset(("hidden", "bars", "name_visibility", "conditions_visibility"))
_KEEP_ON_REFUSAL = frozenset(("room_closed", "room_not_found"))  # not about the change: keep it


class Log(Protocol):
    history_size: int
    fogs: FogCache


class Refused(Exception):
    """The inverse was refused: `error` for the caller; the entry (the event at `version`) is dropped."""

    def __init__(self, error: AppError, version: int | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.version = version


# The caller's newest entries: read through the room's primary key, newest first (at most the room's
# history, TABLEFORGE_WS_HISTORY_SIZE rows, on a rare request), so the hot writes keep no extra index.
_ENTRIES = (sa.select(room_events.c.version, room_events.c.undo)
            .where(room_events.c.room_id == sa.bindparam("room_id"), room_events.c.undo_by == sa.bindparam("by"))
            .order_by(room_events.c.version.desc()).limit(UNDO_DEPTH))


async def undo_last(log: Log, conn: AsyncConnection, room_id: str, c: UndoLast) -> StoredEvent[dict[str, Any]]:
    await conn.execute(sa.select(game_rooms.c.id).where(game_rooms.c.id == room_id).with_for_update())
    rows = (await conn.execute(_ENTRIES, {"room_id": room_id, "by": c.by})).all()
    found = [(int(v), Entry.decode(u)) for v, u in rows if u is not None]
    if not found:
        raise Conflict("nothing left to undo: your recent token changes in this room are all undone",
                       code="nothing_to_undo")
    at, entry = found[0]
    try:
        stored, produced = await _invert(log, conn, room_id, c, entry)
    except Unavailable:
        raise
    except AppError as exc:
        raise Refused(_explain(exc, entry), None if exc.code in _KEEP_ON_REFUSAL else at) from exc
    await _set(conn, room_id, at, None)
    for version, earlier in found[1:]:
        if produced is not None and earlier.token_id == entry.token_id and earlier.version == entry.base:
            await _set(conn, room_id, version, earlier.at(produced))
            break
    return dataclasses.replace(stored, result={"type": entry.etype, "token_id": entry.token_id})


async def drop(db: Database, room_id: str, by: str, version: int) -> None:
    """Clear a refused entry (its own transaction: the refused one rolled back)."""
    async with db.write() as conn:
        await conn.execute(sa.update(room_events).where(
            room_events.c.room_id == room_id, room_events.c.version == version, room_events.c.undo_by == by)
            .values(undo=None))


async def _set(conn: AsyncConnection, room_id: str, version: int, entry: Entry | None) -> None:
    await conn.execute(sa.update(room_events).where(room_events.c.room_id == room_id, room_events.c.version == version)
                       .values(undo=entry.encode() if entry is not None else None))


def _explain(exc: AppError, entry: Entry) -> AppError:
    if exc.code != "conflict":
        return exc
    version = exc.details.get("version") if isinstance(exc.details, dict) else None
    return Conflict("someone else changed this token since your change, so it was not undone",
                    code="undo_conflict", details={"token_id": entry.token_id, "token_version": version})


async def _invert(log: Log, conn: AsyncConnection, room_id: str, c: UndoLast, e: Entry
                  ) -> tuple[StoredEvent[Any], int | None]:
    """(the inverse's stored event, the token version it produced; None: the token is gone)."""
    p, tid = e.prior, e.token_id
    if e.etype == ev.TOKEN_MOVED:
        moved = await board_log.change_token(log, conn, room_id, MoveToken(c.by, tid, float(p["x"]), float(p["y"]),
                                                                           c.owner, e.version, undoable=False))
        return moved, int(moved.result)
    if e.etype == ev.TOKEN_UPDATED:
        if c.owner is not None and _GM_FIELDS & p.keys():
            raise Forbidden("only the room's game master may do this", code="not_gm")
        updated = await board_log.change_token(log, conn, room_id, UpdateToken(c.by, tid, dict(p), c.owner,
                                                                               e.version, undoable=False))
        return updated, int(updated.result["version"])
    if e.etype == ev.TOKEN_BAR_CHANGED:
        bar = await board_log.set_bar(log, conn, room_id, SetBar(c.by, tid, str(p["key"]), p["value"], p["max"],
                                                                 c.owner, e.version, c.level, undoable=False))
        return bar, int(bar.result["version"])
    if e.etype == ev.TOKEN_CONDITIONS_CHANGED:
        # remove what it was after the change, add back what it was before: the list as it was, in order
        tags = await board_log.change_conditions(log, conn, room_id, ChangeConditions(
            c.by, tid, tuple(p["before"]), tuple(p["after"]), c.owner, e.version, c.level, undoable=False))
        return tags, int(tags.result["version"])
    if e.etype == ev.TOKEN_ADDED:
        return await board_log.remove_token(log, conn, room_id, RemoveToken(c.by, tid, c.owner, e.version,
                                                                            undoable=False)), None
    if e.etype == ev.TOKEN_REMOVED:
        return await _restore(log, conn, room_id, c, e), e.version
    raise Conflict("this change cannot be undone", code="nothing_to_undo")  # an entry of a later server


async def _restore(log: Log, conn: AsyncConnection, room_id: str, c: UndoLast, e: Entry
                   ) -> StoredEvent[dict[str, Any]]:
    """Undo a removal: the token back as it was, with the same id, at the version after the one it
    had (`e.version`), checked as a `token.add` of it would be (its scene and asset still there, and
    for a player the players' scene and a visible asset)."""
    version, players_scene = await next_versions(conn, room_id)
    row = dict(e.prior["row"])
    there = (await conn.execute(sa.select(board_tokens.c.version).where(board_tokens.c.id == e.token_id))).scalar()
    if there is not None:  # only another undo of this removal could have put it back
        raise Conflict("the token is back already", code="conflict", details={"version": int(there)})
    scene_id = str(row["scene_id"])
    if (c.owner is not None and scene_id != players_scene) or (await conn.execute(sa.select(scenes.c.id).where(
            scenes.c.id == scene_id, scenes.c.room_id == room_id))).first() is None:
        raise NotFound("no such scene in this room", code="scene_not_found")
    asset = (await conn.execute(sa.select(game_assets.c.room_id, game_assets.c.hidden)
                                .where(game_assets.c.id == row["asset_id"]))).first()
    if asset is None or str(asset[0]) != room_id or (asset[1] and c.owner is not None):
        raise NotFound("no such asset in this room", code="asset_not_found")
    if c.owner is not None and c.owner != row.get("owner_id"):
        raise Forbidden("players may only change their own tokens", code="not_token_owner")
    created = datetime.fromisoformat(str(row.pop("created_at")))
    fogged = (await log.fogs.fog(conn, scene_id)).fogged(float(row["x"]), float(row["y"]))
    await conn.execute(sa.insert(board_tokens).values(**row | {"version": e.version}, room_id=room_id,
                                                      created_at=created, fogged=fogged, asset_hidden=bool(asset[1])))
    new = (await conn.execute(sa.select(*board_log.TOKEN_COLUMNS).where(board_tokens.c.id == e.token_id))
           ).mappings().one()
    token = wire.token(new)
    audience, variants = routed(token, None, board_log.seen(new, players_scene), ev.TOKEN_ADDED,
                                lambda t: {"token": t})
    return await store(conn, log.history_size, room_id, version, ev.TOKEN_ADDED, c.by, {"token": token}, token,
                       audience, variants)

"""The room event log on SQLite (embedded mode): concurrent moves written in one transaction.

On SQLite the CPU of a move is mostly the trips to the driver's thread (aiosqlite runs every call
on a thread of its own: a cursor, an execute, a fetch and a close are each a hand-over) and the
transaction around it (the pool checkout, BEGIN IMMEDIATE, COMMIT). So the moves that arrive while
one batch is being written (db/pg_move_batch.MoveQueue, as on PostgreSQL) go in the next one: one
transaction on the single writer, each statement one trip (`execute_fetchall`), the events of the
whole batch in one `executemany`. Each move is acked only after the batch's COMMIT.

Per move, in the batch's transaction: the token's UPDATE with every guard in its WHERE clause (room
active and without fog, the token in the room, a player's own token that players see, `if_version`),
which changes nothing when a guard refuses; then per room one UPDATE of its version by the number of
moves it got, and the events numbered in arrival order. The writer is the only one (SQLite: one
write transaction at a time), so nothing can change between these statements. A move refused here
(or on a room with fog) takes the transactional path of its own, which applies it or explains.

Undo (db/undo_log.py): each event stores who may undo it (the mover; NULL for an undo's inverse) and
the token's position before the batch (`_PRIOR_SQL`: one read for the whole batch, first in its
transaction), encoded by db/undo_entry.Entry as the transactional path stores it.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import Any, TypeVar, cast

from tableforge.db.changes import Change, MoveToken, StoredEvent
from tableforge.db.engine import Database
from tableforge.db.event_body import TOKEN_VERSION, body_template
from tableforge.db.event_log import TransactionalEventLog
from tableforge.db.log_store import PRUNE_EVERY
from tableforge.db.pg_move_batch import Move, MoveQueue
from tableforge.db.undo_entry import Entry
from tableforge.domain import events as ev
from tableforge.domain import wire
from tableforge.domain.audience import Routing

R = TypeVar("R")

# UUID columns are stored as 32 hex digits on SQLite (sqlalchemy.Uuid); raw statements use that form.
_SEEN = "board_tokens.scene_id = g.players_scene_id AND NOT board_tokens.hidden AND NOT board_tokens.fogged " \
        "AND NOT board_tokens.asset_hidden"


def _move_sql(owner_guard: bool, version_guard: bool) -> str:
    room = "SELECT 1 FROM game_rooms g WHERE g.id = :room AND g.is_active AND g.fog_free"
    if owner_guard:
        room += f" AND board_tokens.owner_id = :owner AND {_SEEN}"
    guard = " AND version = :if_version" if version_guard else ""
    return (f"UPDATE board_tokens SET x = :x, y = :y, version = version + 1 "
            f"WHERE id = :token AND room_id = :room{guard} AND EXISTS ({room}) "
            f"RETURNING version, scene_id, hidden, fogged, asset_hidden")


_MOVE_SQL = {(o, v): _move_sql(o, v) for o in (False, True) for v in (False, True)}
_ROOM_SQL = "UPDATE game_rooms SET version = version + :n WHERE id = :room RETURNING version, players_scene_id"
_EVENT_SQL = "INSERT INTO room_events (room_id, version, body, audience, undo_by, undo) VALUES (?, ?, ?, ?, ?, ?)"
# The batch's tokens as they are before it (the undo entries' prior positions), in one statement: one
# trip per batch, not per move (on the single writer, inside the batch's transaction, nothing else
# changes them in between). SQLite's RETURNING only gives the updated row, so the update cannot say.
_PRIOR_SQL = "SELECT id, x, y FROM board_tokens WHERE id IN ({})"
_PRUNE_SQL = "DELETE FROM room_events WHERE room_id = ? AND version <= ?"


def _hex(value: str) -> str:
    return uuid.UUID(value).hex


class SqliteEventLog(TransactionalEventLog):
    """Moves in batches on the writer; everything else, and every refusal, transactional."""

    FOGGED_HINT_S = 5.0  # how long a room whose move needed the transaction goes straight to it
    FOGGED_HINT_MAX = 10_000

    def __init__(self, db: Database, history_size: int) -> None:
        super().__init__(db, history_size)
        self._moves = MoveQueue(self._write_moves)
        self._fogged: OrderedDict[str, float] = OrderedDict()  # rooms with fog, briefly (a hint)

    async def append(self, room_id: str, change: Change[R]) -> StoredEvent[R]:
        if not isinstance(change, MoveToken) or self._fogged_hint(room_id) or self._moves.full():
            return await super().append(room_id, change)
        c = change
        ts = wire.now_ms()
        template = body_template(ev.TOKEN_MOVED, room_id, ts, c.by, {
            "token_id": c.token_id, "x": float(c.x), "y": float(c.y), "token_version": TOKEN_VERSION})
        row = await self._moves.submit(Move(room_id, c.token_id, c.x, c.y, template.pieces, c.owner, c.if_version,
                                            c.by if c.undoable else None))
        if row is None:
            stored = await super().append(room_id, change)
            self._fogged[room_id] = time.monotonic()  # valid, yet refused in the batch: the room has fog
            while len(self._fogged) > self.FOGGED_HINT_MAX:
                self._fogged.popitem(last=False)
            return cast(StoredEvent[R], stored)
        version, token_version, scene_id, seen = row
        audience = f"g@{scene_id};p" if seen else f"g@{scene_id}"
        return cast(StoredEvent[R], StoredEvent(room_id, version, ts, template.fill(version, token_version),
                                                token_version, Routing(audience)))

    def _fogged_hint(self, room_id: str) -> bool:
        since = self._fogged.get(room_id)
        if since is None:
            return False
        if time.monotonic() - since > self.FOGGED_HINT_S:
            del self._fogged[room_id]  # look again: the fog may be gone
            return False
        return True

    async def _write_moves(self, moves: list[Move]) -> dict[int, tuple[int, int, str, bool]]:
        """One transaction for the batch (see the module docstring); {index: (room version, token
        version, scene, whether players see the token)} for the moves stored."""
        updated: dict[int, tuple[Any, ...]] = {}
        out: dict[int, tuple[int, int, str, bool]] = {}
        async with self.db.write() as conn:
            raw: Any = (await conn.get_raw_connection()).driver_connection  # aiosqlite.Connection
            undoable = [m for m in moves if m.undo_by is not None]
            prior: dict[str, tuple[float, float]] = {}
            if undoable:
                rows = await raw.execute_fetchall(_PRIOR_SQL.format(", ".join("?" * len(undoable))),
                                                  [_hex(m.token_id) for m in undoable])
                prior = {str(r[0]): (float(r[1]), float(r[2])) for r in rows}
            for i, m in enumerate(moves):
                params: dict[str, Any] = {"token": _hex(m.token_id), "room": _hex(m.room_id), "x": float(m.x),
                                          "y": float(m.y)}
                if m.owner is not None:
                    params["owner"] = _hex(m.owner)
                if m.if_version is not None:
                    params["if_version"] = m.if_version
                rows = await raw.execute_fetchall(_MOVE_SQL[m.owner is not None, m.if_version is not None], params)
                if rows:
                    updated[i] = tuple(rows[0])
            by_room: dict[str, list[int]] = {}
            for i in updated:
                by_room.setdefault(moves[i].room_id, []).append(i)
            events, prunes = [], []
            for room_id, indexes in by_room.items():
                last, players_scene = (await raw.execute_fetchall(
                    _ROOM_SQL, {"n": len(indexes), "room": _hex(room_id)}))[0]
                for k, i in enumerate(indexes, 1):
                    token_version, scene, hidden, fogged, asset_hidden = updated[i]
                    version = int(last) - len(indexes) + k
                    scene_id = str(uuid.UUID(scene))
                    seen = scene == players_scene and not (hidden or fogged or asset_hidden)
                    head, mid, tail = moves[i].pieces
                    undo_by = moves[i].undo_by
                    undo = None if undo_by is None else Entry.of(
                        ev.TOKEN_MOVED, moves[i].token_id, int(token_version),
                        dict(zip(("x", "y"), prior[_hex(moves[i].token_id)], strict=True))).encode()
                    events.append((_hex(room_id), version, f"{head}{version}{mid}{token_version}{tail}",
                                   f"g@{scene_id};p" if seen else f"g@{scene_id}",
                                   None if undo_by is None else _hex(undo_by), undo))
                    out[i] = (version, int(token_version), scene_id, seen)
                    if self.history_size and version % PRUNE_EVERY == 0:
                        prunes.append((_hex(room_id), version - self.history_size))
            if events:
                await (await raw.executemany(_EVENT_SQL, events)).close()
            for prune in prunes:
                await raw.execute_fetchall(_PRUNE_SQL, prune)
        return out

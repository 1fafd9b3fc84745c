"""`token.add` on PostgreSQL in one statement (db/pg_event_log.py runs it on a lane, like the move).

What the transaction (db/board_log.add_token) reads before it writes, the statement takes from
`AddContexts` (per room: the players' scene, whether the room is fog-free, the game system's token
defaults with the system's `updated_at`) and, on a room with fog, from the scene's parsed fog in the
log's `FogCache`. Python builds the token, its event body and its per-audience copies from those
(the same functions as the transaction: board_log.character / added_routing), and the statement
checks every assumption under the locks, so a stale one stores nothing:

- `room` bumps the room's version only if the room is active, the scene is the players' scene
  (unless a GM names another scene of the room), the asset is the room's and visible (unless a GM
  adds it), the room is still fog-free (the fog-free statement) and the room's game system and its
  `updated_at` are the ones the defaults came from (only when the add takes them). PostgreSQL
  re-checks the room row's own columns under its lock (`players_scene_id`, `fog_free`,
  `game_system_id`, `is_active`), and every change of scenes, fog, assets and their visibility locks
  the room row first (the same order as here: no deadlock).
- `a` then reads the asset FOR SHARE: a row lock reads the newest version of the row, so an asset
  hidden while this statement waited for the room lock is seen hidden (the room's WHERE read it in
  the statement's older snapshot). The token's `asset_hidden`, and so who sees it, come from `a`.
- `sc` (the statement for a room with fog) locks the scene FOR SHARE at the `fog_version` whose fog
  Python applied (as the fogged move does, db/pg_event_log.py).
- The event's audience is chosen in SQL between the two Python made (players see the token, or
  only the GMs of its scene), with the per-audience copies when players see it (`variants_template`).
  The undo entry is the transaction's (board_log.add_undo).
- Whatever fails after `room` (the asset hidden or gone, the fog changed, the scene removed: an empty
  `a`/`sc`, or a foreign key) leaves the event's body NULL or breaks a constraint, and the whole
  statement aborts: no version skipped. Then, or when `room` refused, the caller forgets the room's
  context and takes the transaction, which applies the add or gives the precise refusal.

A template edit is caught by `game_systems.updated_at` (every edit sets it); like the transaction,
the statement does not lock the game system (an edit racing an add may land on either side of it).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from tableforge.db.board_log import Defaults
from tableforge.observability import metrics


def _add_sql(fogged: bool) -> str:
    fog_guard, sc, sc_from = " AND g.fog_free", "", ""
    if fogged:
        fog_guard, sc_from = "", ", sc"
        sc = """
), sc AS MATERIALIZED (
    SELECT 1 FROM scenes s, room WHERE s.id = $11 AND s.fog_version = $31 FOR SHARE OF s"""
    return f"""
WITH room AS (
    UPDATE game_rooms g SET version = g.version + 1
    WHERE g.id = $1 AND g.is_active{fog_guard}
      AND (g.players_scene_id = $11 OR $24)
      AND EXISTS (SELECT 1 FROM scenes s WHERE s.id = $11 AND s.room_id = $1)
      AND EXISTS (SELECT 1 FROM game_assets a WHERE a.id = $2 AND a.room_id = $1 AND ($23 OR NOT a.hidden))
      AND (NOT $25 OR (g.game_system_id IS NOT DISTINCT FROM $26::uuid AND ($26::uuid IS NULL OR EXISTS (
           SELECT 1 FROM game_systems gs WHERE gs.id = $26::uuid AND gs.updated_at = $27))))
    RETURNING g.version, g.players_scene_id AS ps
), a AS MATERIALIZED (
    SELECT a.hidden FROM game_assets a, room WHERE a.id = $2 AND a.room_id = $1 AND ($23 OR NOT a.hidden)
    FOR SHARE OF a{sc}
), tok AS (
    INSERT INTO board_tokens (id, room_id, asset_id, owner_id, x, y, rotation, scale, z_index, version, created_at,
                              scene_id, hidden, fogged, asset_hidden, name, size, bars, conditions, name_visibility,
                              conditions_visibility)
    SELECT $3, $1, $2, $4, $5, $6, $7, $8, $9, 1, $10, $11, $12, $13, a.hidden, $14, $15, $16::jsonb, $17::jsonb,
           $18, $19
    FROM a{sc_from}
    RETURNING id, scene_id, hidden, fogged, asset_hidden
), out AS (
    SELECT room.version AS rv, tok.id AS tid,
           coalesce(tok.scene_id = room.ps AND NOT tok.hidden AND NOT tok.fogged AND NOT tok.asset_hidden, false)
             AS seen
    FROM room LEFT JOIN tok ON true
), ev AS (
    INSERT INTO room_events (room_id, version, body, audience, variants, undo_by, undo)
    SELECT $1, out.rv, CASE WHEN out.tid IS NOT NULL THEN array_to_string($20::text[], out.rv::text) END,
           CASE WHEN out.seen THEN $21::text ELSE $28::text END,
           CASE WHEN out.seen THEN array_to_string($22::text[], out.rv::text) END, $29::uuid, $30::text
    FROM out
)
SELECT rv, seen FROM out WHERE tid IS NOT NULL"""


# (fogged) -> the statement; its parameters are built by `args` (pg_event_log._one_add_token).
ADD_SQL = {f: _add_sql(f) for f in (False, True)}

# A room's context, read when not kept (one round trip): the players' scene, fog-freeness, the game
# system and its token defaults' source, and (on a room with fog) the fog of the scene the add names.
CONTEXT_SQL = """SELECT g.players_scene_id::text, g.fog_free, g.game_system_id::text, gs.updated_at, gs.template::text,
       s.id::text, CASE WHEN NOT g.fog_free THEN s.fog::text END, s.fog_version
FROM game_rooms g LEFT JOIN game_systems gs ON gs.id = g.game_system_id
LEFT JOIN scenes s ON s.id = coalesce($2::uuid, g.players_scene_id) AND s.room_id = g.id
WHERE g.id = $1"""

# The fog of a scene the context did not bring (a GM adding to another scene of a room with fog).
SCENE_FOG_SQL = "SELECT fog::text, fog_version FROM scenes WHERE id = $1 AND room_id = $2"


class AddContext(NamedTuple):
    players_scene_id: str
    fog_free: bool
    system_id: str | None
    system_updated_at: datetime | None
    defaults: Defaults


class AddContexts:
    """The rooms' add contexts, a bounded LRU (a stale one only makes the statement refuse)."""

    SIZE = 10_000

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._rooms: OrderedDict[str, AddContext] = OrderedDict()

    def get(self, room_id: str) -> AddContext | None:
        found = self._rooms.get(room_id)
        if found is not None:
            self._rooms.move_to_end(room_id)
        return found

    def put(self, room_id: str, context: AddContext) -> None:
        self._rooms[room_id] = context
        self._rooms.move_to_end(room_id)
        while len(self._rooms) > self.size:
            self._rooms.popitem(last=False)
        metrics.ADD_CONTEXTS.set(len(self._rooms))

    def drop(self, room_id: str) -> None:
        if self._rooms.pop(room_id, None) is not None:
            metrics.ADD_CONTEXTS.set(len(self._rooms))


def jsonb(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()

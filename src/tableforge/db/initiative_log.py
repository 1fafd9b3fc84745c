"""The room's turn order on the transactional path (domain/initiative.py has the rules).

The tracker lives on the room row, which `next_versions` locks, so changes to it serialize with
every other change of the room. Its event, `initiative.changed {op, initiative, rolled?}`, carries
the whole tracker (at most 50 entries): GMs get every entry; players and spectators get the entries
of the tokens they see at that moment (and the current turn only if it is one of those).
Entries whose tokens were removed are dropped at each change.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db.board_log import TEMPLATE, Log, not_found, seen
from tableforge.db.changes import ChangeInitiative, StoredEvent
from tableforge.db.log_store import next_versions, store
from tableforge.db.schema import board_tokens, game_rooms
from tableforge.domain import dice
from tableforge.domain import events as ev
from tableforge.domain import initiative as rules
from tableforge.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed

_TOKENS = sa.select(board_tokens.c.id, board_tokens.c.owner_id, board_tokens.c.scene_id, board_tokens.c.hidden,
                    board_tokens.c.fogged, board_tokens.c.asset_hidden)


def _formula(template: Any) -> tuple[str, str]:
    """(the initiative formula, the order) of the room's game system, or 1d20 highest first."""
    found = template.get("initiative") if isinstance(template, dict) else None
    if not isinstance(found, dict):
        return rules.DEFAULT_FORMULA, "descending"
    formula = found.get("formula")
    formula = formula if isinstance(formula, str) else rules.DEFAULT_FORMULA
    return formula, "ascending" if found.get("order") == "ascending" else "descending"


def _roll(formula: str) -> tuple[int, str]:
    try:
        expression = dice.parse(formula)
    except ValidationFailed:  # a template stored before the checks: roll the default
        expression = dice.parse(rules.DEFAULT_FORMULA)
    return expression.roll().total, expression.notation


async def change_initiative(log: Log, conn: AsyncConnection, room_id: str, c: ChangeInitiative
                            ) -> StoredEvent[dict[str, Any]]:
    version, players_scene = await next_versions(conn, room_id)
    doc = rules.load((await conn.execute(sa.select(game_rooms.c.initiative).where(game_rooms.c.id == room_id))
                      ).scalar())
    ids = {e["token_id"] for e in doc["entries"]} | ({c.token_id} if c.token_id else set())
    rows = {str(r["id"]): r for r in (await conn.execute(_TOKENS.where(
        board_tokens.c.room_id == room_id, board_tokens.c.id.in_(sorted(ids))))).mappings().all()}
    seen_ids = {t for t, r in rows.items() if seen(r, players_scene)}
    doc["entries"] = [e for e in doc["entries"] if e["token_id"] in rows]  # their tokens were removed
    _guard(c, doc, rows, seen_ids)
    if c.if_version is not None and doc["version"] != c.if_version:
        raise Conflict(f"the turn order changed (version {doc['version']}, you had {c.if_version})",
                       code="conflict", details={"version": doc["version"]})
    formula, order = _formula((await conn.execute(TEMPLATE, {"room_id": room_id})).scalar()
                              if c.op in ("add", "sort") else None)
    value, rolled = c.value, None
    if c.op == "add" and value is None:
        value, notation = _roll(formula)
        rolled = {"token_id": c.token_id, "notation": notation, "total": value}
    new = rules.apply(doc, c.op, order=order, token_id=c.token_id, entry_id=c.entry_id, value=value,
                      new_id=c.new_id)
    await conn.execute(sa.update(game_rooms).where(game_rooms.c.id == room_id).values(initiative=new))
    payload: dict[str, Any] = {"op": c.op, "initiative": new}
    players: dict[str, Any] = {"op": c.op, "initiative": rules.for_players(new, seen_ids)}
    if rolled is not None:
        payload["rolled"] = rolled
        if c.token_id in seen_ids:
            players["rolled"] = rolled
    return await store(conn, log.history_size, room_id, version, ev.INITIATIVE_CHANGED, c.by, payload,
                       new if c.is_gm else players["initiative"], "g", (("p", ev.INITIATIVE_CHANGED, players),))


def _guard(c: ChangeInitiative, doc: dict[str, Any], rows: dict[str, Any], seen_ids: set[str]) -> None:
    """Who may do what: GMs anything; a player adds or removes their own visible tokens' entries and
    ends their own turn. A token a player may not see is token_not_found, as if it did not exist."""
    if c.op == "add" and (c.token_id not in rows or (not c.is_gm and c.token_id not in seen_ids)):
        raise not_found()
    if c.is_gm:
        return
    if c.op in rules.GM_OPS:
        raise Forbidden("only the GM may do this to the turn order", code="not_gm")
    if c.op == "add":
        token_id = c.token_id
    elif c.op == "remove":
        entry = rules.entry_of(doc, c.entry_id or "")
        if entry["token_id"] not in seen_ids:
            raise NotFound("no such entry in the turn order", code="entry_not_found")  # as if it did not exist
        token_id = entry["token_id"]
    else:  # next: ending one's own turn
        token_id = rules.current_token(doc)
    owner = rows[token_id]["owner_id"] if token_id in rows else None
    if owner is None or str(owner) != c.by:
        raise Forbidden("players may only do this for their own tokens", code="not_token_owner")

"""A room's turn order (docs/protocol.md, "Initiative"). Pure: the tracker is a small JSON document
(`game_rooms.initiative`) changed by one operation at a time; db/initiative_log.py stores it with
its event.

Tracker: `{round, current (an entry id or None: the fight has not started), version, entries:
[{id, token_id, value}]}`. `version` rises with every change (`if_version` guards against two GMs
pressing "next" at once). At most MAX_ENTRIES entries, one per token.
"""

from __future__ import annotations

from typing import Any, Final

from tableforge.domain.errors import Conflict, NotFound

MAX_ENTRIES: Final = 50
OPS: Final = ("add", "remove", "sort", "next", "prev", "next_round", "clear")
GM_OPS: Final = frozenset(("sort", "prev", "next_round", "clear"))
DEFAULT_FORMULA: Final = "1d20"


def empty() -> dict[str, Any]:
    return {"round": 1, "current": None, "version": 0, "entries": []}


def load(doc: Any) -> dict[str, Any]:
    """The stored tracker (None: a room that never had one)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        return empty()
    return {"round": int(doc.get("round", 1)), "current": doc.get("current"), "version": int(doc.get("version", 0)),
            "entries": [dict(e) for e in doc["entries"]]}


def entry_of(doc: dict[str, Any], entry_id: str) -> dict[str, Any]:
    for entry in doc["entries"]:
        if entry["id"] == entry_id:
            return entry
    raise NotFound("no such entry in the turn order", code="entry_not_found")


def _index(doc: dict[str, Any]) -> int | None:
    ids = [e["id"] for e in doc["entries"]]
    return ids.index(doc["current"]) if doc["current"] in ids else None


def apply(doc: dict[str, Any], op: str, *, order: str = "descending", token_id: str | None = None,
          entry_id: str | None = None, value: int | None = None, new_id: str = "") -> dict[str, Any]:
    """The tracker after `op` (a new document; `doc` is left alone)."""
    out = load(doc)
    entries: list[dict[str, Any]] = out["entries"]
    if op == "add":
        found = next((e for e in entries if e["token_id"] == token_id), None)
        if found is not None:
            found["value"] = value
        else:
            if len(entries) >= MAX_ENTRIES:
                raise Conflict(f"the turn order holds at most {MAX_ENTRIES} entries", code="initiative_full")
            entries.append({"id": new_id, "token_id": token_id, "value": value})
    elif op == "remove":
        gone = entry_of(out, entry_id or "")
        at = entries.index(gone)
        entries.remove(gone)
        if out["current"] == gone["id"]:
            out["current"] = entries[at % len(entries)]["id"] if entries else None
    elif op == "sort":
        entries.sort(key=lambda e: e["value"] if e["value"] is not None else 0, reverse=order != "ascending")
    elif op in ("next", "prev", "next_round"):
        if not entries:
            raise Conflict("the turn order is empty", code="initiative_empty")
        _step(out, op)
    elif op == "clear":
        out = empty() | {"version": out["version"]}
    out["version"] += 1
    return out


def _step(out: dict[str, Any], op: str) -> None:
    entries = out["entries"]
    at = _index(out)
    if op == "next_round" or (op == "next" and at is not None and at + 1 >= len(entries)):
        out["round"] += 1
        out["current"] = entries[0]["id"]
    elif op == "next":
        out["current"] = entries[0 if at is None else at + 1]["id"]
    elif at is None:  # prev before the fight started: the last entry of this round
        out["current"] = entries[-1]["id"]
    elif at == 0:
        if out["round"] > 1:
            out["round"] -= 1
            out["current"] = entries[-1]["id"]
    else:
        out["current"] = entries[at - 1]["id"]


def for_players(doc: dict[str, Any], seen: set[str]) -> dict[str, Any]:
    """The tracker players may see: entries of the tokens they see; the current turn only if it
    is one of those (else None: someone they cannot see is acting)."""
    entries = [e for e in doc["entries"] if e["token_id"] in seen]
    current = doc["current"] if any(e["id"] == doc["current"] for e in entries) else None
    return {"round": doc["round"], "current": current, "version": doc["version"], "entries": entries}


def current_token(doc: dict[str, Any]) -> str | None:
    at = _index(doc)
    return None if at is None else str(doc["entries"][at]["token_id"])

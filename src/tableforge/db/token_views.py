"""Who receives which copy of a token event, when some of the token's fields are not for everyone
(domain/token_fields.py). Decided where the event is stored, like every audience: GMs viewing the
token's scene get the whole token; the owner (on a player's socket, `pu:<owner>`) the owner's copy;
the other players and spectators the players' copy. One body per audience, never per socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tableforge.db.log_store import Variant, token_routing
from tableforge.domain import events as ev
from tableforge.domain.token_fields import LEVEL_OWNER, LEVEL_PLAYER, for_level, restricted

Payload = Callable[[dict[str, Any]], dict[str, Any]]


def routed(token: dict[str, Any], before: bool | None, after: bool, etype: str, payload_of: Payload, *,
           carries_fields: bool = True) -> tuple[str, tuple[Variant, ...]]:
    """(the main body's audience, the other bodies) of an event about `token` (its whole state
    after the change). `payload_of(copy)` is the event's payload built from one copy of the token;
    `carries_fields` False: the payload holds none of its fields (a move), so only a players'
    `token.added` (the token uncovered) needs copies."""
    audience, flip = token_routing(token["scene_id"], before, after)
    if flip == "removed":
        return audience, (("p", ev.TOKEN_REMOVED, {"token_id": token["id"]}),)
    if flip == "added":
        etype, payload_of = ev.TOKEN_ADDED, _whole
    elif not after or not carries_fields:
        return audience, ()
    if not restricted(token):
        return audience, (("p", etype, payload_of(token)),) if flip == "added" else ()
    variants: list[Variant] = []
    players = for_level(token, LEVEL_PLAYER)
    owner = token.get("owner_id")
    if owner:
        mine = for_level(token, LEVEL_OWNER)
        if mine != players:
            variants.append((f"pu:{owner}", etype, payload_of(mine)))
    variants.append(("p", etype, payload_of(players)))
    return f"g@{token['scene_id']}", tuple(variants)


def _whole(token: dict[str, Any]) -> dict[str, Any]:
    return {"token": token}

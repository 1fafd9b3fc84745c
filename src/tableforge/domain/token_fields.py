"""Tokens as characters: a name, a size in cells, up to three bars and conditions, each with a
visibility (docs/protocol.md, "Tokens as characters").

Visibility is per field: `everyone`, `owners` (the token's owner and the GMs) or `gm`. A token is
stored whole; `for_level` gives the copy one audience may see (`gm`: everything; `owner`: what the
owner may see; `player`: what every other player and spectator may see). Fields a copy may not
carry are left out (bars) or blanked (`name` "", `conditions` []), so a copy never tells its reader
that something was left out.
"""

from __future__ import annotations

import re
from typing import Any, Final

from tableforge.domain.errors import Forbidden, NotFound, ValidationFailed
from tableforge.domain.grid import TOKEN_CELLS_MAX, TOKEN_CELLS_MIN
from tableforge.domain.system_template import (
    BAR_LABEL_MAX,
    BAR_VALUE_MAX,
    CONDITION_MAX,
    MAX_BARS,
    VISIBILITIES,
)

EVERYONE: Final = "everyone"
OWNERS: Final = "owners"
GM_ONLY: Final = "gm"
NAME_MAX: Final = 64
MAX_TOKEN_CONDITIONS: Final = 20  # on one token (a system lists up to 50 to pick from)
CHARACTER_FIELDS: Final = frozenset(("name", "size", "bars", "conditions", "name_visibility",
                                     "conditions_visibility"))
LEVEL_GM: Final = "gm"
LEVEL_OWNER: Final = "owner"
LEVEL_PLAYER: Final = "player"
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DEFAULT_COLORS = ("#cc3333", "#3366cc", "#33aa55")


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _bad(field: str, message: str, code: str = "bad_token_field") -> ValidationFailed:
    return ValidationFailed(message, code=code, details=[{"field": field, "problem": message}])


def _may_see(visibility: str, level: str) -> bool:
    if level == LEVEL_GM or visibility == EVERYONE:
        return True
    return visibility == OWNERS and level == LEVEL_OWNER


def level_of(is_gm: bool, user_id: str, owner_id: str | None) -> str:
    if is_gm:
        return LEVEL_GM
    return LEVEL_OWNER if owner_id and owner_id == user_id else LEVEL_PLAYER


def restricted(token: dict[str, Any]) -> bool:
    """Whether some field of the token is not for everyone (so audiences get different copies)."""
    vis = token.get("visibility") or {}
    return (vis.get("name", EVERYONE) != EVERYONE or vis.get("conditions", EVERYONE) != EVERYONE
            or any(b.get("visibility", EVERYONE) != EVERYONE for b in token.get("bars") or ()))


def for_level(token: dict[str, Any], level: str) -> dict[str, Any]:
    """The copy of a token (its wire shape) that `level` may see."""
    if level == LEVEL_GM or not restricted(token):
        return token
    vis = token.get("visibility") or {}
    out = dict(token)
    if not _may_see(vis.get("name", EVERYONE), level):
        out["name"] = ""
    if not _may_see(vis.get("conditions", EVERYONE), level):
        out["conditions"] = []
    out["bars"] = [b for b in token.get("bars") or () if _may_see(b.get("visibility", EVERYONE), level)]
    # The visibility of what this copy leaves out would hint that it exists.
    out["visibility"] = {k: v for k, v in vis.items() if _may_see(v, level)}
    return out


def may_see(visibility: str, level: str) -> bool:
    return _may_see(visibility, level)


# -- checking what a client sends ----------------------------------------------------------------
def check_name(name: str) -> str:
    name = name.strip()
    if len(name) > NAME_MAX or has_control(name):
        raise _bad("name", f"a token's name is at most {NAME_MAX} characters, without control characters")
    return name


def check_size(size: float) -> float:
    if not TOKEN_CELLS_MIN <= size <= TOKEN_CELLS_MAX:
        raise _bad("size", f"a token's size is {TOKEN_CELLS_MIN}-{TOKEN_CELLS_MAX} cells", code="bad_token_size")
    return float(size)


def check_visibility(value: Any, field: str) -> str:
    if value not in VISIBILITIES:
        raise _bad(field, f"{field} must be one of {', '.join(VISIBILITIES)}")
    return str(value)


def check_value(value: Any, field: str, *, low: int = -BAR_VALUE_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) \
            or not low <= value <= BAR_VALUE_MAX:
        raise _bad(field, f"{field} must be a whole number from {low} to {BAR_VALUE_MAX}")
    return int(value)


def check_bars(bars: Any) -> list[dict[str, Any]]:
    """A token's bars as a client (or a template's token_defaults) gives them, in stored form."""
    if not isinstance(bars, list) or len(bars) > MAX_BARS:
        raise _bad("bars", f"a token has at most {MAX_BARS} bars")
    out: list[dict[str, Any]] = []
    for i, bar in enumerate(bars):
        here = f"bars[{i}]"
        if not isinstance(bar, dict):
            raise _bad(here, "a bar is an object {key, label, value, max, color, visibility}")
        key = bar.get("key")
        if not isinstance(key, str) or not _KEY.fullmatch(key) or any(b["key"] == key for b in out):
            raise _bad(f"{here}.key", "a bar's key is 1-32 lower-case letters, digits or _, unique on the token")
        label = bar.get("label", key)
        if not isinstance(label, str) or not 1 <= len(label) <= BAR_LABEL_MAX or has_control(label):
            raise _bad(f"{here}.label", f"a bar's label is 1-{BAR_LABEL_MAX} characters")
        top = None if bar.get("max") is None else check_value(bar["max"], f"{here}.max", low=1)
        value = check_value(bar.get("value", top if top is not None else 0), f"{here}.value")
        color = bar.get("color", _DEFAULT_COLORS[i])
        if not isinstance(color, str) or not _COLOR.fullmatch(color):
            raise _bad(f"{here}.color", "a bar's color is like #cc3333")
        visibility = check_visibility(bar.get("visibility", EVERYONE), f"{here}.visibility")
        out.append({"key": key, "label": label, "value": value, "max": top, "color": color.lower(),
                    "visibility": visibility})
    return out


def check_conditions(names: Any) -> list[str]:
    """Conditions: free text within limits (the system's list is what the page offers), unique
    regardless of case, in the order given."""
    if not isinstance(names, list) or len(names) > MAX_TOKEN_CONDITIONS:
        raise _bad("conditions", f"a token has at most {MAX_TOKEN_CONDITIONS} conditions")
    out: list[str] = []
    for name in names:
        out_name = check_condition(name)
        if out_name.casefold() not in (n.casefold() for n in out):
            out.append(out_name)
    return out


def check_condition(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= CONDITION_MAX or has_control(name):
        raise _bad("conditions", f"a condition is 1-{CONDITION_MAX} characters, without control characters")
    return name.strip()


def defaults(template: Any) -> tuple[float | None, list[dict[str, Any]]]:
    """(size, bars) a new token takes from its room's game-system template; a stored template that
    no longer passes the checks gives nothing rather than an error to the player adding a token."""
    if not isinstance(template, dict) or not isinstance(template.get("token_defaults"), dict):
        return None, []
    found = template["token_defaults"]
    try:
        size = check_size(found["size"]) if isinstance(found.get("size"), int | float) else None
        bars = check_bars([{k: v for k, v in b.items() if k != "sheet_field"} if isinstance(b, dict) else b
                           for b in found.get("bars") or []])
    except ValidationFailed:
        return None, []
    return size, bars


# -- the small changes --------------------------------------------------------------------------
def set_bar(bars: list[dict[str, Any]], key: str, value: int | None, top: int | str | None, level: str
            ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the bars after `token.bar`, the changed bar). `top` "keep": max unchanged. A bar the caller
    may not see is `bar_not_found`, as for a key that does not exist."""
    out = [dict(b) for b in bars]
    for bar in out:
        if bar["key"] == key and _may_see(bar.get("visibility", EVERYONE), level):
            if value is not None:
                bar["value"] = check_value(value, "value")
            if top != "keep":
                bar["max"] = None if top is None else check_value(top, "max", low=1)
            return out, bar
    raise NotFound(f"the token has no bar {key[:40]!r}", code="bar_not_found")


def change_conditions(conditions: list[str], visibility: str, level: str, add: list[str], remove: list[str]
                      ) -> list[str]:
    if not _may_see(visibility, level):
        raise Forbidden("only the GM may change this token's conditions", code="not_gm")
    gone = {check_condition(n).casefold() for n in remove}
    out = [n for n in conditions if n.casefold() not in gone]
    for name in add:
        name = check_condition(name)
        if name.casefold() not in (n.casefold() for n in out):
            out.append(name)
    if len(out) > MAX_TOKEN_CONDITIONS:
        raise _bad("conditions", f"a token has at most {MAX_TOKEN_CONDITIONS} conditions")
    return out

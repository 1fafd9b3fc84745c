"""The parts of a game system's template that the play tools act on, checked on the way in.

A template is free-form JSON (domain/freeform.py bounds its size); these keys, when present, must
be what the tools can use, so a room never offers a preset its dice cannot roll:

- `dice_presets`: up to MAX_PRESETS `{label, notation}`; `notation` is anything `/roll` takes
  (repeat, expression, label: domain/dice.py), e.g. `6d6>=5`;
- `initiative`: `{formula, order?}`; `formula` a plain dice expression (no repeat, no label, no
  attribute references), `order` `descending` (default: highest acts first) or `ascending`;
- `grid`: grid settings (domain/grid_settings.py), any subset; the rest take the defaults;
- `token_defaults`: `{size?, scale?, bars?}`: `size` in cells, `scale` as a token's, and up to
  MAX_BARS `bars` `{key, label, value?, max?, color?, visibility?, sheet_field?}`: `visibility`
  `everyone`, `owners` or `gm`; `sheet_field` the key of a field of `sheet.fields` the bar mirrors;
- `conditions`: up to MAX_CONDITIONS names a token may be tagged with ("prone").
Other keys (`sheet`, rules text, older keys such as `token_defaults.show_hp_bar`) are left alone.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final, NoReturn

from tableforge.domain import dice
from tableforge.domain.errors import ValidationFailed
from tableforge.domain.grid import TOKEN_CELLS_MAX, TOKEN_CELLS_MIN
from tableforge.domain.grid_settings import GridSettings
from tableforge.domain.limits import SCALE_MAX, SCALE_MIN

ERROR_CODE: Final = "bad_template"
MAX_PRESETS: Final = 50
PRESET_LABEL_MAX: Final = 100
MAX_BARS: Final = 3
BAR_LABEL_MAX: Final = 40
BAR_VALUE_MAX: Final = 1_000_000
MAX_CONDITIONS: Final = 50
CONDITION_MAX: Final = 32
VISIBILITIES: Final = ("everyone", "owners", "gm")
INITIATIVE_ORDERS: Final = ("descending", "ascending")
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


class TemplateInvalid(ValidationFailed):
    """`path`: where in the template (`/dice_presets/1/notation`); `code` the kind of problem:
    `bad_dice` (a preset or formula the dice cannot roll), `bad_grid`, or `bad_template`."""

    def __init__(self, message: str, *, path: str, code: str, position: int | None = None) -> None:
        details: dict[str, Any] = {"path": path, "code": code}
        if position is not None:
            details["position"] = position
        super().__init__(message, code=code, details=details)
        self.path = path
        self.position = position


def _fail(path: str, message: str) -> NoReturn:
    raise TemplateInvalid(message, path=path, code=ERROR_CODE)


def _object(value: Any, path: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(path, f"{what} must be an object")
    return value


def _list(value: Any, path: str, what: str, most: int) -> list[Any]:
    if not isinstance(value, list):
        _fail(path, f"{what} must be a list")
    if len(value) > most:
        _fail(path, f"{what}: at most {most}, got {len(value)}")
    return value


def _text(value: Any, path: str, what: str, most: int) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(path, f"{what} must be a non-empty string")
    if len(value) > most:
        _fail(path, f"{what} must be at most {most} characters")
    if not value.isprintable():
        _fail(path, f"{what} may not hold control characters")
    return value


def _dice(notation: Any, path: str, what: str, *, command: bool) -> None:
    if not isinstance(notation, str):
        _fail(path, f"{what} must be a string of dice notation, like 1d20+5")
    try:
        dice.parse_command(notation) if command else dice.parse(notation)
    except ValidationFailed as error:
        hint = "; attribute references like @dex are not supported: use plain dice" if "@" in notation else ""
        position = error.details.get("position") if isinstance(error.details, dict) else None
        raise TemplateInvalid(f"{what} {notation!r}: {error.message}{hint}", path=path, code=dice.ERROR_CODE,
                              position=position) from None


def _presets(value: Any) -> None:
    for i, preset in enumerate(_list(value, "/dice_presets", "dice_presets", MAX_PRESETS)):
        here = f"/dice_presets/{i}"
        _object(preset, here, f"dice preset {i + 1}")
        _text(preset.get("label"), f"{here}/label", f"dice preset {i + 1}'s label", PRESET_LABEL_MAX)
        _dice(preset.get("notation"), f"{here}/notation", f"dice preset {i + 1} ({preset['label']})", command=True)


def _initiative(value: Any) -> None:
    _object(value, "/initiative", "initiative")
    _dice(value.get("formula"), "/initiative/formula", "the initiative formula", command=False)
    order = value.get("order", "descending")
    if order not in INITIATIVE_ORDERS or not isinstance(order, str):
        _fail("/initiative/order", f"initiative order must be one of {', '.join(INITIATIVE_ORDERS)}")


def _grid(value: Any) -> None:
    try:
        GridSettings.from_dict(value)
    except ValidationFailed as error:
        field = error.details.get("field", "") if isinstance(error.details, dict) else ""
        raise TemplateInvalid(error.message, path=f"/grid/{field}" if field else "/grid",
                              code=error.code) from None


def _number(value: Any, path: str, what: str, low: float, high: float, *, integer: bool = False) -> None:
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        _fail(path, f"{what} must be {'a whole number' if integer else 'a number'}")
    if not low <= value <= high:
        _fail(path, f"{what} must be between {low:g} and {high:g}")


def _sheet_keys(template: dict[str, Any]) -> set[str] | None:
    fields = template.get("sheet", {}).get("fields") if isinstance(template.get("sheet"), dict) else None
    if not isinstance(fields, list):
        return None
    return {f["key"] for f in fields if isinstance(f, dict) and isinstance(f.get("key"), str)}


def _bar(bar: Any, here: str, n: int, sheet: set[str] | None, seen: set[str]) -> None:
    _object(bar, here, f"bar {n}")
    key = bar.get("key")
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        _fail(f"{here}/key", f"bar {n}'s key must be 1-32 lower-case letters, digits or _, starting with a letter")
    if key in seen:
        _fail(f"{here}/key", f"bar key {key!r} is used twice")
    seen.add(key)
    _text(bar.get("label"), f"{here}/label", f"bar {n}'s label", BAR_LABEL_MAX)
    if "value" in bar:
        _number(bar["value"], f"{here}/value", f"bar {n}'s value", -BAR_VALUE_MAX, BAR_VALUE_MAX, integer=True)
    if bar.get("max") is not None:
        _number(bar["max"], f"{here}/max", f"bar {n}'s max", 1, BAR_VALUE_MAX, integer=True)
    if "color" in bar and (not isinstance(bar["color"], str) or not _COLOR.fullmatch(bar["color"])):
        _fail(f"{here}/color", f"bar {n}'s color must be like #cc3333")
    if "visibility" in bar and bar["visibility"] not in VISIBILITIES:
        _fail(f"{here}/visibility", f"bar {n}'s visibility must be one of {', '.join(VISIBILITIES)}")
    field = bar.get("sheet_field")
    if "sheet_field" in bar and (not isinstance(field, str) or sheet is None or field not in sheet):
        _fail(f"{here}/sheet_field", f"bar {n}'s sheet_field {bar['sheet_field']!r} is not a field of the sheet")


def _token_defaults(value: Any, template: dict[str, Any]) -> None:
    _object(value, "/token_defaults", "token_defaults")
    if "size" in value:
        _number(value["size"], "/token_defaults/size", "the token size (cells)", TOKEN_CELLS_MIN, TOKEN_CELLS_MAX)
    if "scale" in value:
        _number(value["scale"], "/token_defaults/scale", "the token scale", SCALE_MIN, SCALE_MAX)
    if "bars" in value:
        sheet = _sheet_keys(template)
        seen: set[str] = set()
        for i, bar in enumerate(_list(value["bars"], "/token_defaults/bars", "bars", MAX_BARS)):
            _bar(bar, f"/token_defaults/bars/{i}", i + 1, sheet, seen)


def _conditions(value: Any) -> None:
    seen: set[str] = set()
    for i, name in enumerate(_list(value, "/conditions", "conditions", MAX_CONDITIONS)):
        _text(name, f"/conditions/{i}", f"condition {i + 1}", CONDITION_MAX)
        if name.casefold() in seen:
            _fail(f"/conditions/{i}", f"condition {name!r} is listed twice")
        seen.add(name.casefold())


def check_template(template: dict[str, Any]) -> None:
    """Raise TemplateInvalid for the first part the play tools could not use; nothing otherwise."""
    if "dice_presets" in template:
        _presets(template["dice_presets"])
    if "initiative" in template:
        _initiative(template["initiative"])
    if "grid" in template:
        _grid(template["grid"])
    if "token_defaults" in template:
        _token_defaults(template["token_defaults"], template)
    if "conditions" in template:
        _conditions(template["conditions"])

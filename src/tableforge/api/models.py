"""Request bodies (pydantic): validated at the edge, 422 with the field name when wrong."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from tableforge.domain import freeform, limits
from tableforge.domain.text import INVALID_TEXT, NUL, NUL_MESSAGE

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.NAME_MAX_CHARS)]
Username = Annotated[str, StringConstraints(strip_whitespace=True, min_length=limits.USERNAME_MIN,
                                            max_length=limits.USERNAME_MAX, pattern=limits.USERNAME_PATTERN)]
Password = Annotated[str, StringConstraints(min_length=limits.PASSWORD_MIN, max_length=limits.PASSWORD_MAX)]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=limits.NAME_MAX_CHARS)]
Uuid = Annotated[str, StringConstraints(pattern=limits.UUID_PATTERN)]
Coord = Annotated[float, Field(ge=-limits.COORD_MAX, le=limits.COORD_MAX, allow_inf_nan=False)]
Rotation = Annotated[float, Field(ge=-limits.ROTATION_MAX, le=limits.ROTATION_MAX, allow_inf_nan=False)]
Scale = Annotated[float, Field(ge=limits.SCALE_MIN, le=limits.SCALE_MAX, allow_inf_nan=False)]
ZIndex = Annotated[int, Field(ge=-limits.Z_INDEX_MAX, le=limits.Z_INDEX_MAX)]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Description = Annotated[str, StringConstraints(max_length=limits.SYSTEM_DESCRIPTION_MAX)]
Complexity = Literal["beginner", "intermediate", "advanced"]


def refuse_nul(value: Any) -> Any:
    """A NUL in any string field is `invalid_text` (see domain/text.py), whatever else the field
    accepts. Raised as its own error type so the 422 handler can answer with that code."""
    if isinstance(value, str) and NUL in value:
        raise PydanticCustomError(INVALID_TEXT, NUL_MESSAGE)
    return value


def check_freeform(value: Any) -> Any:
    """Free-form JSON (a template) within domain/freeform.py's limits; the error names the limit
    and the path inside the document (`details[].limit`, `details[].path`)."""
    if value is None:
        return value
    violation = freeform.check(value)
    if violation is not None:
        if violation.is_text:
            raise PydanticCustomError(INVALID_TEXT, "{message} (at {path})",
                                      {"message": violation.message, "path": violation.path or "/"})
        raise PydanticCustomError("freeform_limit", "{message} (at {path})",
                                  {"message": violation.message, "limit": violation.limit,
                                   "path": violation.path or "/"})
    if len(orjson.dumps(value)) > limits.TEMPLATE_MAX_BYTES:
        raise PydanticCustomError("freeform_limit", "{message} (at {path})",
                                  {"message": f"the document is over {limits.TEMPLATE_MAX_BYTES} bytes",
                                   "limit": "max_bytes", "path": "/"})
    return value


def no_null(value: Any) -> Any:
    """For PATCH bodies: a field may be left out, but an explicit null for a column that cannot be
    null is refused (it used to reach the database as a NOT NULL violation)."""
    if value is None:
        raise PydanticCustomError("null_not_allowed", "may be left out, but not null")
    return value


def _drop_null_defaults(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        if prop.get("default", 0) is None:
            del prop["default"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # mode="before" runs on the raw input of every field the client sent (defaults are not validated)
    _no_nul = field_validator("*", mode="before")(refuse_nul)


class RegisterIn(Strict):
    username: Username
    password: Password
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    # *extension*: needed when TABLEFORGE_REGISTRATION=invite (ignored otherwise).
    invite_code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] | None = None


class PasswordChangeIn(Strict):
    current_password: Annotated[str, StringConstraints(max_length=limits.PASSWORD_MAX)]
    new_password: Password


class InviteIn(Strict):
    uses: Annotated[int, Field(ge=1, le=10_000)] = 1
    expires_in_hours: Annotated[float, Field(gt=0, le=24 * 365, allow_inf_nan=False)] | None = 72.0


class LoginIn(Strict):
    username: Annotated[str, StringConstraints(max_length=limits.USERNAME_MAX + 10)]
    password: Annotated[str, StringConstraints(max_length=limits.PASSWORD_MAX)]


class SystemIn(Strict):
    name: Name
    description: Description = ""
    category: Category
    complexity: Complexity
    is_public: bool = True
    template: dict[str, Any] = Field(default_factory=dict)

    _template_limits = field_validator("template")(check_freeform)


class SystemPatch(Strict):
    """Every field optional; none nullable (SkipJsonSchema keeps `null` out of the OpenAPI schema,
    and so does dropping the `default: null` that would contradict each property's type)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_drop_null_defaults)

    name: Name | SkipJsonSchema[None] = None
    description: Description | SkipJsonSchema[None] = None
    category: Category | SkipJsonSchema[None] = None
    complexity: Complexity | SkipJsonSchema[None] = None
    is_public: bool | SkipJsonSchema[None] = None
    template: dict[str, Any] | SkipJsonSchema[None] = None

    _not_null = field_validator("name", "description", "category", "complexity", "is_public", "template",
                                mode="before")(no_null)
    _template_limits = field_validator("template")(check_freeform)


class RatingIn(Strict):
    rating: Annotated[int, Field(ge=1, le=5, strict=True)]


class RoomIn(Strict):
    name: Name
    game_system_id: Uuid | None = None


class JoinIn(Strict):
    invite_code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=4, max_length=16)]


class TokenIn(Strict):
    asset_id: Uuid
    x: Coord
    y: Coord
    rotation: Rotation = 0.0
    scale: Scale = 1.0
    z_index: ZIndex = 0
    hidden: bool = False  # *extension*: the GM layer (GMs only)
    scene_id: Uuid | None = None  # *extension*: default the players' scene


class AssetPatch(Strict):
    hidden: bool


class TokenPatch(Strict):
    x: Coord | None = None
    y: Coord | None = None
    rotation: Rotation | None = None
    scale: Scale | None = None
    z_index: ZIndex | None = None
    hidden: bool | None = None  # *extension*: GMs only
    if_version: Annotated[int, Field(ge=0, le=limits.VERSION_MAX)] | None = None


class BroadcastIn(Strict):
    message: Annotated[str, StringConstraints(min_length=1, max_length=2000)]

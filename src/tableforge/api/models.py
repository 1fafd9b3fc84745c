"""Request bodies (pydantic): validated at the edge, 422 with the field name when wrong."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from tableforge.domain import limits

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
Complexity = Literal["beginner", "intermediate", "advanced"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    description: Annotated[str, StringConstraints(max_length=limits.SYSTEM_DESCRIPTION_MAX)] = ""
    category: Category
    complexity: Complexity
    is_public: bool = True
    template: dict[str, Any] = Field(default_factory=dict)

    @field_validator("template")
    @classmethod
    def _template_size(cls, v: dict[str, Any]) -> dict[str, Any]:
        import orjson

        if len(orjson.dumps(v)) > limits.TEMPLATE_MAX_BYTES:
            raise ValueError(f"the template is over {limits.TEMPLATE_MAX_BYTES} bytes")
        return v


class SystemPatch(Strict):
    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=limits.SYSTEM_DESCRIPTION_MAX)] | None = None
    category: Category | None = None
    complexity: Complexity | None = None
    is_public: bool | None = None
    template: dict[str, Any] | None = None

    _template_size = field_validator("template")(SystemIn._template_size.__func__)  # type: ignore[attr-defined]


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


class TokenPatch(Strict):
    x: Coord | None = None
    y: Coord | None = None
    rotation: Rotation | None = None
    scale: Scale | None = None
    z_index: ZIndex | None = None
    if_version: Annotated[int, Field(ge=0)] | None = None


class BroadcastIn(Strict):
    message: Annotated[str, StringConstraints(min_length=1, max_length=2000)]

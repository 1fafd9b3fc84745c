"""Response shapes for the OpenAPI description (docs/protocol.md's JSON, as models).

Documentation only: routes still return their prebuilt JSON (`JSON(...)`, `conditional_json`), so
nothing here is instantiated or validated on a request; `responses(...)` puts these models in the
OpenAPI document so that clients can be generated from it. Models allow extra fields (the protocol
grows by adding fields), and every 4xx/5xx is the one error shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(Out):
    code: str
    message: str
    details: Any = None


class ErrorOut(Out):
    """Every error: `{"error": {"code", "message", "details"}}`. For validation errors (`validation_error`,
    `invalid_text`) `details` is a list of `{field, problem, in?, limit?, path?}`."""

    error: ErrorBody


class UserOut(Out):
    id: str
    username: str
    first_name: str | None
    last_name: str | None
    profile_image_url: str | None
    is_admin: bool


class PublicUserOut(Out):
    id: str
    username: str
    first_name: str | None
    last_name: str | None
    profile_image_url: str | None


class SessionOut(Out):
    user: UserOut
    token: str


class SystemSummaryOut(Out):
    id: str
    owner_id: str | None
    name: str
    description: str
    category: str
    complexity: str
    is_public: bool
    is_official: bool
    download_count: int
    rating: float
    rating_count: int
    created_at: str | None
    updated_at: str | None
    usage_count: int | None = None


class SystemOut(SystemSummaryOut):
    template: dict[str, Any]


class CatalogOut(Out):
    systems: list[SystemSummaryOut]
    total: int
    page: int
    limit: int


class RatingOut(Out):
    system_id: str
    rating: int
    average: float
    rating_count: int


class RoomOut(Out):
    id: str
    name: str
    gm_id: str
    game_system_id: str | None
    is_active: bool
    version: int
    created_at: str | None
    invite_code: str | None = None
    players_scene_id: str | None = None
    spectator_invite_code: str | None = None


class RoomListOut(Out):
    rooms: list[RoomOut]
    total: int


class PlayerOut(Out):
    user: PublicUserOut
    role: str
    is_online: bool
    joined_at: str | None


class PlayerListOut(Out):
    players: list[PlayerOut]
    total: int


class AssetOut(Out):
    id: str
    room_id: str
    uploader_id: str | None
    name: str
    type: str
    url: str
    width: int
    height: int
    size: int
    sha256: str
    created_at: str | None
    hidden: bool = False


class AssetListOut(Out):
    assets: list[AssetOut]
    total: int


class TokenOut(Out):
    id: str
    asset_id: str
    owner_id: str | None
    x: float
    y: float
    rotation: float
    scale: float
    z_index: int
    version: int
    scene_id: str | None = None
    hidden: bool = False


class TokenChangeOut(TokenOut):
    room_version: int


class TokenRemovedOut(Out):
    version: int
    room_version: int


class MessageOut(Out):
    id: str
    user_id: str | None
    username: str | None
    kind: str
    text: str | None
    roll: Any = None
    version: int
    created_at: str | None


class SceneMapOut(Out):
    asset_id: str
    url: str
    width: int
    height: int


class SceneSummaryOut(Out):
    id: str
    name: str
    position: int
    map: SceneMapOut | None
    created_at: str | None


class SceneOut(SceneSummaryOut):
    grid: dict[str, Any]
    fog: dict[str, Any]


class ScenesOut(Out):
    scenes: list[SceneSummaryOut]
    players_scene_id: str | None
    total: int


class SnapshotOut(Out):
    room: RoomOut
    players: list[PlayerOut]
    assets: list[AssetOut]
    tokens: list[TokenOut]
    messages: list[MessageOut]
    scene_id: str | None = None
    scene: SceneOut | None = None
    scenes: list[SceneSummaryOut] = []


class HealthOut(Out):
    status: str


class ReadyOut(Out):
    status: str
    instance_id: str
    checks: dict[str, Any]


class InstanceOut(Out):
    instance_id: str


class InstancesOut(Out):
    instances: list[dict[str, Any]]
    total: int


class StatsOut(InstancesOut):
    connections: int


class RoomMembersOut(Out):
    room_id: str
    connections: int
    online_users: list[Any]
    members: int


class SentOut(Out):
    sent: bool


class ClosingOut(Out):
    instance_id: str
    closing: bool


class ReachedOut(Out):
    instances: Any


class CacheStatsOut(Out):
    instance_id: str
    mode: str
    healthy: bool
    requests: int
    hit_rate: float
    tiers: dict[str, Any]
    cache: dict[str, Any]
    redis: Any


class InvalidatedOut(Out):
    pattern: str
    removed: int
    instance_id: str


class TicketOut(Out):
    ticket: str
    expires_in: float


class UserStateOut(Out):
    id: str
    disabled: bool
    disabled_at: str | None
    sessions_revoked: int


class InviteOut(Out):
    id: str
    uses: int
    used: int


class InviteCreatedOut(InviteOut):
    code: str


class InvitesOut(Out):
    invites: list[InviteOut]
    total: int


class ReportOut(Out):
    """A database report (pool, slow queries, tables, optimize): live state, shape per backend."""


_ERROR = {"model": ErrorOut, "description": "`{error: {code, message, details}}`"}
ERRORS: dict[int | str, dict[str, Any]] = {"4XX": _ERROR, 503: _ERROR}


def responses(model: type[BaseModel] | None, status: int = 200, *, not_modified: bool = False
              ) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: its success body (`model`, None for no body) and, for
    conditional GETs, the bodiless 304."""
    out: dict[int | str, dict[str, Any]] = {status: {"model": model} if model else {"description": "No body"}}
    if not_modified:
        out[304] = {"description": "Not Modified (If-None-Match matched the ETag)"}
    return out


TEXT: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}
IMAGE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The image bytes, typed by what the server found (PNG, JPEG, WebP or GIF)",
          "content": {t: {"schema": {"type": "string", "format": "binary"}}
                      for t in ("image/png", "image/jpeg", "image/webp", "image/gif")}},
    304: {"description": "Not Modified (If-None-Match matched the ETag)"}}

"""hidden information: scenes, the GM layer, fog of war, spectators, audiences of stored events

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

- `scenes`: a room's boards (map, grid, fog). Every existing room gets one, "Scene 1", which becomes
  its players' scene (`game_rooms.players_scene_id`) and holds all its tokens (`board_tokens.scene_id`),
  so existing rooms look exactly as before.
- `game_rooms.spectator_invite_code`: drawn for every existing room (unique, like `invite_code`; 12
  characters where player codes have 10, so one code can never name both kinds).
- `board_tokens.hidden`, `game_assets.hidden` (copied to `board_tokens.asset_hidden`): the GM layer;
  `board_tokens.fogged`: the token's centre is under its scene's fog (none yet: false);
  `game_rooms.fog_free`: no scene of the room has fog (true).
- `room_messages.visibility`, `.audience`, `.to_users`: who a message or roll reached (all: the room).
- `room_events.audience`, `.variants`: who receives a stored event's body, and its other bodies
  (NULL: everyone, as every event stored before).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_UUID = sa.Uuid(as_uuid=False)
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_GRID = {"type": "square", "size": 50, "offset_x": 0, "offset_y": 0, "color": "#000000", "opacity": 0.25,
         "distance": 5, "unit": "ft"}
_FOG = {"base": "revealed", "shapes": []}


def upgrade() -> None:
    op.create_table(
        "scenes",
        sa.Column("id", _UUID, nullable=False),
        sa.Column("room_id", _UUID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("map_asset_id", _UUID, nullable=True),
        sa.Column("grid", _JSON, nullable=False),
        sa.Column("fog", _JSON, nullable=False),
        sa.Column("fog_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("fog_version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["room_id"], ["game_rooms.id"], name=op.f("fk_scenes_room_id_game_rooms"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["map_asset_id"], ["game_assets.id"], name=op.f("fk_scenes_map_asset_id_game_assets"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scenes")),
    )
    op.create_index("ix_scenes_room_position", "scenes", ["room_id", "position"])
    op.create_index(op.f("ix_scenes_map_asset_id"), "scenes", ["map_asset_id"])
    # Plain ADD COLUMN, never a batch (table rebuild) on game_rooms or game_assets: with SQLite's
    # foreign keys on, dropping the old copy of a table that others reference with ON DELETE CASCADE
    # empties them. board_tokens is referenced by nothing, so its batch is safe.
    op.add_column("game_rooms", sa.Column("players_scene_id", _UUID, nullable=True))
    op.add_column("game_rooms", sa.Column("spectator_invite_code", sa.String(length=16), nullable=True))
    op.add_column("game_rooms", sa.Column("fog_free", sa.Boolean(), server_default=sa.true(), nullable=False))
    with op.batch_alter_table("board_tokens") as batch:
        batch.add_column(sa.Column("scene_id", _UUID, nullable=True))
        batch.add_column(sa.Column("hidden", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("fogged", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("asset_hidden", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.create_foreign_key(op.f("fk_board_tokens_scene_id_scenes"), "scenes", ["scene_id"], ["id"],
                                 ondelete="CASCADE")
    op.create_index("ix_board_tokens_scene_order", "board_tokens", ["scene_id", "z_index", "created_at"])
    op.add_column("game_assets", sa.Column("hidden", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("room_messages", sa.Column("visibility", sa.String(length=10), server_default="room",
                                             nullable=False))
    op.add_column("room_messages", sa.Column("audience", sa.Text(), nullable=True))
    op.add_column("room_messages", sa.Column("to_users", _JSON, nullable=True))
    op.add_column("room_events", sa.Column("audience", sa.Text(), nullable=True))
    op.add_column("room_events", sa.Column("variants", sa.Text(), nullable=True))
    _fill_existing_rooms()
    op.create_index("uq_game_rooms_spectator_invite_code", "game_rooms", ["spectator_invite_code"], unique=True)


def _fill_existing_rooms() -> None:
    """One scene per existing room, holding its tokens, and a spectator code. Room ids are used as
    they are stored (compared raw); new ids are bound as the app binds them (its UUID type), so they
    are stored in the form the app reads and compares (32 hex digits on SQLite, native on PostgreSQL)."""
    bind = op.get_bind()
    insert = sa.text(
        "INSERT INTO scenes (id, room_id, name, position, grid, fog, fog_count, fog_version, created_at) "
        "VALUES (:id, :room, 'Scene 1', 0, :grid, :fog, 0, 0, :at)").bindparams(
        sa.bindparam("id", type_=_UUID), sa.bindparam("grid", type_=_JSON), sa.bindparam("fog", type_=_JSON),
        sa.bindparam("at", type_=sa.DateTime(timezone=True)))
    point = sa.text("UPDATE game_rooms SET players_scene_id = :scene, spectator_invite_code = :code "
                    "WHERE id = :room").bindparams(sa.bindparam("scene", type_=_UUID))
    move = sa.text("UPDATE board_tokens SET scene_id = :scene WHERE room_id = :room").bindparams(
        sa.bindparam("scene", type_=_UUID))
    now = datetime.now(UTC)
    taken: set[str] = set()
    rooms = [row[0] for row in bind.execute(sa.text("SELECT id FROM game_rooms ORDER BY created_at, id"))]
    for room in rooms:
        scene = str(uuid.uuid4())
        bind.execute(insert, {"id": scene, "room": room, "grid": _GRID, "fog": _FOG, "at": now})
        bind.execute(point, {"scene": scene, "code": _code(taken), "room": room})
        bind.execute(move, {"scene": scene, "room": room})


def _code(taken: set[str]) -> str:
    while True:
        code = "".join(secrets.choice(_ALPHABET) for _ in range(12))
        if code not in taken:
            taken.add(code)
            return code


def downgrade() -> None:
    op.drop_index("uq_game_rooms_spectator_invite_code", "game_rooms")
    with op.batch_alter_table("room_events") as batch:
        batch.drop_column("variants")
        batch.drop_column("audience")
    with op.batch_alter_table("room_messages") as batch:
        batch.drop_column("to_users")
        batch.drop_column("audience")
        batch.drop_column("visibility")
    op.execute("ALTER TABLE game_assets DROP COLUMN hidden")  # not a batch: tokens reference game_assets
    op.drop_index("ix_board_tokens_scene_order", "board_tokens")
    with op.batch_alter_table("board_tokens") as batch:
        batch.drop_constraint(op.f("fk_board_tokens_scene_id_scenes"), type_="foreignkey")
        batch.drop_column("asset_hidden")
        batch.drop_column("fogged")
        batch.drop_column("hidden")
        batch.drop_column("scene_id")
    op.execute("ALTER TABLE game_rooms DROP COLUMN fog_free")
    op.execute("ALTER TABLE game_rooms DROP COLUMN spectator_invite_code")  # not a batch: see upgrade()
    op.execute("ALTER TABLE game_rooms DROP COLUMN players_scene_id")
    op.drop_table("scenes")

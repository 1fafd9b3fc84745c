"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("profile_image_url", sa.String(length=500), nullable=True),
        sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "game_systems",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("owner_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("complexity", sa.String(length=20), nullable=False),
        sa.Column("is_public", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("is_official", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("download_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rating_avg", sa.Float(), server_default="0", nullable=False),
        sa.Column("rating_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "template",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_game_systems_owner_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_game_systems")),
    )
    with op.batch_alter_table("game_systems", schema=None) as batch_op:
        batch_op.create_index("ix_game_systems_category", ["category", "complexity"], unique=False)
        batch_op.create_index(
            "ix_game_systems_catalog",
            [
                "is_public",
                sa.text("is_official DESC"),
                sa.text("download_count DESC"),
                sa.text("rating_avg DESC"),
                sa.text("created_at DESC"),
            ],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_game_systems_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "game_rooms",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("gm_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("game_system_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("invite_code", sa.String(length=16), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["game_system_id"],
            ["game_systems.id"],
            name=op.f("fk_game_rooms_game_system_id_game_systems"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["gm_id"], ["users.id"], name=op.f("fk_game_rooms_gm_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_game_rooms")),
        sa.UniqueConstraint("invite_code", name=op.f("uq_game_rooms_invite_code")),
    )
    with op.batch_alter_table("game_rooms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_game_rooms_game_system_id"), ["game_system_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_game_rooms_gm_id"), ["gm_id"], unique=False)

    op.create_table(
        "system_ratings",
        sa.Column("system_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["game_systems.id"],
            name=op.f("fk_system_ratings_system_id_game_systems"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_system_ratings_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("system_id", "user_id", name=op.f("pk_system_ratings")),
    )
    with op.batch_alter_table("system_ratings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_system_ratings_user_id"), ["user_id"], unique=False)

    op.create_table(
        "game_assets",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("room_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("uploader_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("file_path", sa.String(length=300), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"], ["game_rooms.id"], name=op.f("fk_game_assets_room_id_game_rooms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["uploader_id"], ["users.id"], name=op.f("fk_game_assets_uploader_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_game_assets")),
    )
    with op.batch_alter_table("game_assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_game_assets_room_id"), ["room_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_game_assets_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_game_assets_uploader_id"), ["uploader_id"], unique=False)

    op.create_table(
        "room_events",
        sa.Column("room_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"], ["game_rooms.id"], name=op.f("fk_room_events_room_id_game_rooms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("room_id", "version", name=op.f("pk_room_events")),
    )
    op.create_table(
        "room_messages",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("room_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "roll",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["game_rooms.id"],
            name=op.f("fk_room_messages_room_id_game_rooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_room_messages_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_room_messages")),
    )
    with op.batch_alter_table("room_messages", schema=None) as batch_op:
        batch_op.create_index("ix_room_messages_room_version", ["room_id", "version"], unique=False)
        batch_op.create_index(batch_op.f("ix_room_messages_user_id"), ["user_id"], unique=False)

    op.create_table(
        "room_players",
        sa.Column("room_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("is_online", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["game_rooms.id"],
            name=op.f("fk_room_players_room_id_game_rooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_room_players_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("room_id", "user_id", name=op.f("pk_room_players")),
    )
    with op.batch_alter_table("room_players", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_room_players_user_id"), ["user_id"], unique=False)

    op.create_table(
        "board_tokens",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("room_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("asset_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("owner_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("rotation", sa.Float(), server_default="0", nullable=False),
        sa.Column("scale", sa.Float(), server_default="1", nullable=False),
        sa.Column("z_index", sa.Integer(), server_default="0", nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["game_assets.id"],
            name=op.f("fk_board_tokens_asset_id_game_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_board_tokens_owner_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["game_rooms.id"],
            name=op.f("fk_board_tokens_room_id_game_rooms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_board_tokens")),
    )
    with op.batch_alter_table("board_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_board_tokens_asset_id"), ["asset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_board_tokens_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_board_tokens_room_id"), ["room_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("board_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_board_tokens_room_id"))
        batch_op.drop_index(batch_op.f("ix_board_tokens_owner_id"))
        batch_op.drop_index(batch_op.f("ix_board_tokens_asset_id"))

    op.drop_table("board_tokens")
    with op.batch_alter_table("room_players", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_room_players_user_id"))

    op.drop_table("room_players")
    with op.batch_alter_table("room_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_room_messages_user_id"))
        batch_op.drop_index("ix_room_messages_room_version")

    op.drop_table("room_messages")
    op.drop_table("room_events")
    with op.batch_alter_table("game_assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_game_assets_uploader_id"))
        batch_op.drop_index(batch_op.f("ix_game_assets_sha256"))
        batch_op.drop_index(batch_op.f("ix_game_assets_room_id"))

    op.drop_table("game_assets")
    with op.batch_alter_table("system_ratings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_system_ratings_user_id"))

    op.drop_table("system_ratings")
    with op.batch_alter_table("game_rooms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_game_rooms_gm_id"))
        batch_op.drop_index(batch_op.f("ix_game_rooms_game_system_id"))

    op.drop_table("game_rooms")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_user_id"))

    op.drop_table("sessions")
    with op.batch_alter_table("game_systems", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_game_systems_owner_id"))
        batch_op.drop_index("ix_game_systems_catalog")
        batch_op.drop_index("ix_game_systems_category")

    op.drop_table("game_systems")
    op.drop_table("users")

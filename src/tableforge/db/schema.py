"""The tables, as SQLAlchemy Core metadata. Migrations in `migrations/versions` create them."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

UUID = sa.Uuid(as_uuid=False)
TS = sa.DateTime(timezone=True)
JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

users = sa.Table(
    "users", metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("username", sa.String(32), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("first_name", sa.String(100)),
    sa.Column("last_name", sa.String(100)),
    sa.Column("profile_image_url", sa.String(500)),
    sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("disabled_at", TS),  # migration 0003: set by an admin; a disabled user cannot log in
)
# migration 0003: `Bob` and `bob` are one name (login looks names up through this index).
sa.Index("ux_users_username_lower", sa.func.lower(users.c.username), unique=True)

# migration 0003: admin-made invites for TABLEFORGE_REGISTRATION=invite. Only a hash of the code is kept.
registration_invites = sa.Table(
    "registration_invites", metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_by", UUID, sa.ForeignKey("users.id", ondelete="SET NULL"), index=True),
    sa.Column("uses", sa.Integer, nullable=False),
    sa.Column("used", sa.Integer, nullable=False, server_default="0"),
    sa.Column("expires_at", TS),
    sa.Column("revoked_at", TS),
    sa.Column("created_at", TS, nullable=False),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", UUID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("revoked_at", TS),
)

game_systems = sa.Table(
    "game_systems", metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("owner_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL"), index=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("category", sa.String(50), nullable=False),
    sa.Column("complexity", sa.String(20), nullable=False),
    sa.Column("is_public", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("is_official", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("download_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rating_avg", sa.Float, nullable=False, server_default="0"),
    sa.Column("rating_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("template", JSONDoc, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    # The catalog's order: official first, then downloads, rating, newest.
    sa.Index("ix_game_systems_catalog", "is_public", sa.text("is_official DESC"),
             sa.text("download_count DESC"), sa.text("rating_avg DESC"), sa.text("created_at DESC")),
    sa.Index("ix_game_systems_category", "category", "complexity"),
)

system_ratings = sa.Table(
    "system_ratings", metadata,
    sa.Column("system_id", UUID, sa.ForeignKey("game_systems.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", UUID, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
    sa.Column("rating", sa.SmallInteger, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

game_rooms = sa.Table(
    "game_rooms", metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("gm_id", UUID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("game_system_id", UUID, sa.ForeignKey("game_systems.id", ondelete="SET NULL"), index=True),
    sa.Column("invite_code", sa.String(16), nullable=False, unique=True),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", TS, nullable=False),
    # migration 0002: usage counts of the catalog read only active rooms.
    sa.Index("ix_game_rooms_active_system", "game_system_id", postgresql_where=sa.text("is_active"),
             sqlite_where=sa.text("is_active")),
)

room_players = sa.Table(
    "room_players", metadata,
    sa.Column("room_id", UUID, sa.ForeignKey("game_rooms.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", UUID, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
    sa.Column("role", sa.String(10), nullable=False),
    sa.Column("is_online", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("joined_at", TS, nullable=False),
)

game_assets = sa.Table(
    "game_assets", metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("room_id", UUID, sa.ForeignKey("game_rooms.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("uploader_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL"), index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("file_path", sa.String(300), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_game_assets_room_created", "room_id", "created_at"),  # migration 0002
)

board_tokens = sa.Table(
    "board_tokens", metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("room_id", UUID, sa.ForeignKey("game_rooms.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("asset_id", UUID, sa.ForeignKey("game_assets.id", ondelete="CASCADE"), nullable=False,
              index=True),
    sa.Column("owner_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL"), index=True),
    sa.Column("x", sa.Float, nullable=False),
    sa.Column("y", sa.Float, nullable=False),
    sa.Column("rotation", sa.Float, nullable=False, server_default="0"),
    sa.Column("scale", sa.Float, nullable=False, server_default="1"),
    sa.Column("z_index", sa.Integer, nullable=False, server_default="0"),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_board_tokens_room_order", "room_id", "z_index", "created_at"),  # migration 0002
)

room_messages = sa.Table(
    "room_messages", metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("room_id", UUID, sa.ForeignKey("game_rooms.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL"), index=True),
    sa.Column("kind", sa.String(10), nullable=False),  # "chat" or "roll"
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("roll", JSONDoc),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_room_messages_room_version", "room_id", "version"),
)

# The bounded per-room event history behind `join {since}`: the encoded event, as sent.
room_events = sa.Table(
    "room_events", metadata,
    sa.Column("room_id", UUID, sa.ForeignKey("game_rooms.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
)

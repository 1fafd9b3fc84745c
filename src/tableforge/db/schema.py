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
    # migration 0004: the maintenance job deletes dead sessions in batches by these two.
    sa.Index("ix_sessions_expires_at", "expires_at"),
    sa.Index("ix_sessions_revoked_at", "revoked_at", postgresql_where=sa.text("revoked_at IS NOT NULL"),
             sqlite_where=sa.text("revoked_at IS NOT NULL")),
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
    # migration 0004: the scene players and spectators see (no foreign key: game_rooms and scenes
    # would reference each other; the services never remove the players' scene), and the code that
    # makes spectators. Both are set for every room (the migration fills existing ones).
    sa.Column("players_scene_id", UUID),
    sa.Column("spectator_invite_code", sa.String(16)),
    # migration 0004: no scene of the room has any fog. Kept on the room row, which every change
    # locks and PostgreSQL re-checks under that lock, so the one-statement move and add (which
    # need no geometry on a fog-free room) can never race a fog change.
    sa.Column("fog_free", sa.Boolean, nullable=False, server_default=sa.true()),
    # migration 0006: the turn order (domain/initiative.py), NULL until first used.
    sa.Column("initiative", JSONDoc),
    # migration 0002: usage counts of the catalog read only active rooms.
    sa.Index("uq_game_rooms_spectator_invite_code", "spectator_invite_code", unique=True),  # migration 0004
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
    sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),  # migration 0004: GM layer
    sa.Index("ix_game_assets_room_created", "room_id", "created_at"),  # migration 0002
)

# migration 0004: a room's boards. `fog` is {base, shapes} (domain/fog.py); `fog_count` its number of
# shapes, so that SQL can tell a uniform fog (every point alike) without reading the document.
scenes = sa.Table(
    "scenes", metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("room_id", UUID, sa.ForeignKey("game_rooms.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("map_asset_id", UUID, sa.ForeignKey("game_assets.id", ondelete="SET NULL"), index=True),
    sa.Column("grid", JSONDoc, nullable=False),
    sa.Column("fog", JSONDoc, nullable=False),
    sa.Column("fog_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("fog_version", sa.BigInteger, nullable=False, server_default="0"),  # raised by every fog change
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_scenes_room_position", "room_id", "position"),
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
    # migration 0004: the token's scene (set for every token; the migration fills existing ones),
    # the GM layer, and whether its centre is under its scene's fog (kept in step by every move and
    # fog change, so visibility never needs the fog's geometry outside those two).
    sa.Column("scene_id", UUID, sa.ForeignKey("scenes.id", ondelete="CASCADE")),
    sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("fogged", sa.Boolean, nullable=False, server_default=sa.false()),
    # The asset's `hidden`, copied (hiding an asset updates its tokens), so that a token's row alone
    # says whether players see it; see `fog_free` for why that matters.
    sa.Column("asset_hidden", sa.Boolean, nullable=False, server_default=sa.false()),
    # migration 0006: tokens as characters (domain/token_fields.py): name, size in cells, bars
    # (a JSON list of {key, label, value, max, color, visibility}), conditions (a JSON list of
    # names), and the visibility of the name and of the conditions.
    sa.Column("name", sa.String(64), nullable=False, server_default=""),
    sa.Column("size", sa.Float, nullable=False, server_default="1"),
    sa.Column("bars", JSONDoc),
    sa.Column("conditions", JSONDoc),
    sa.Column("name_visibility", sa.String(8), nullable=False, server_default="everyone"),
    sa.Column("conditions_visibility", sa.String(8), nullable=False, server_default="everyone"),
    sa.Index("ix_board_tokens_room_order", "room_id", "z_index", "created_at"),  # migration 0002
    sa.Index("ix_board_tokens_scene_order", "scene_id", "z_index", "created_at"),  # migration 0004
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
    # migration 0004: who it reached. `visibility`: room | gm | self | whisper; `audience`: the event's
    # selector (domain/audience.py), NULL for everyone; `to_users`: a whisper's named users.
    sa.Column("visibility", sa.String(10), nullable=False, server_default="room"),
    sa.Column("audience", sa.Text),
    sa.Column("to_users", JSONDoc),
    sa.Index("ix_room_messages_room_version", "room_id", "version"),
)

# The bounded per-room event history behind `join {since}`: the encoded event, as sent.
room_events = sa.Table(
    "room_events", metadata,
    sa.Column("room_id", UUID, sa.ForeignKey("game_rooms.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    # migration 0004: who receives `body` (NULL: everyone) and the other bodies, tried in order
    # (a JSON list of [selector, body]); see domain/audience.py.
    sa.Column("audience", sa.Text),
    sa.Column("variants", sa.Text),
    # migration 0007: who may undo this change (NULL: nobody) and what undoing it needs (JSON text,
    # NULL once undone or refused); never sent to clients (db/undo_log.py).
    sa.Column("undo_by", UUID),
    sa.Column("undo", sa.Text),
)

# migration 0004: one row per maintenance job run (services/maintenance), the last N per job.
# A run is inserted as `running` and the holder refreshes `heartbeat_at` while it works; the two
# partial unique indexes make "one run of a job at a time" and "one successful run per scheduled
# slot" hold across every instance and CLI process, whatever the lease says.
_RUNNING = "outcome = 'running'"
_SLOT_TAKEN = "outcome IN ('running', 'ok')"
maintenance_runs = sa.Table(
    "maintenance_runs", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(40), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),  # schedule, start, api, cli
    sa.Column("slot", TS),  # the scheduled slot's start; NULL for runs on demand and at start
    sa.Column("instance_id", sa.String(200), nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("heartbeat_at", TS, nullable=False),
    sa.Column("finished_at", TS),
    sa.Column("duration_seconds", sa.Float),
    sa.Column("outcome", sa.String(16), nullable=False),  # running, ok, failed, abandoned
    sa.Column("summary", JSONDoc),
    sa.Column("error", sa.String(500)),
    sa.Index("ix_maintenance_runs_job_id", "job", "id"),
    sa.Index("ux_maintenance_runs_running", "job", unique=True, postgresql_where=sa.text(_RUNNING),
             sqlite_where=sa.text(_RUNNING)),
    sa.Index("ux_maintenance_runs_slot", "job", "slot", unique=True, postgresql_where=sa.text(_SLOT_TAKEN),
             sqlite_where=sa.text(_SLOT_TAKEN)),
)

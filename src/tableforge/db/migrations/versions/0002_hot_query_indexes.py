"""indexes for the hot queries; pg_stat_statements where permitted

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Why each index (every one checked with EXPLAIN in tests/db/test_explain.py):
- the snapshot reads a room's assets in upload order and its tokens in drawing order: with
  (room_id, created_at) and (room_id, z_index, created_at) both are an index range scan that is
  already sorted, instead of a scan plus a sort;
- the catalog counts a system's active rooms (`usage_count`): a partial index over active rooms
  answers it from the index alone and stays small as closed rooms pile up.

pg_stat_statements: created when the role may (superuser); otherwise the slow-query report says
how to enable it. The library itself must be in shared_preload_libraries (see .ci/pg-setup).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_game_assets_room_created", "game_assets", ["room_id", "created_at"])
    op.create_index("ix_board_tokens_room_order", "board_tokens", ["room_id", "z_index", "created_at"])
    op.create_index("ix_game_rooms_active_system", "game_rooms", ["game_system_id"],
                    postgresql_where=sa.text("is_active"), sqlite_where=sa.text("is_active"))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        available = bind.execute(sa.text(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'")).first()
        if available is not None:
            # A savepoint: without the privilege, CREATE EXTENSION fails and must not abort the migration.
            savepoint = bind.begin_nested()
            try:
                bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
                savepoint.commit()
            except sa.exc.DBAPIError:
                savepoint.rollback()


def downgrade() -> None:
    op.drop_index("ix_game_rooms_active_system", "game_rooms")
    op.drop_index("ix_board_tokens_room_order", "board_tokens")
    op.drop_index("ix_game_assets_room_created", "game_assets")

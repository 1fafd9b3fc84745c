"""tokens as characters (name, size in cells, bars, conditions, their visibility); a room's turn order

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Six columns on `board_tokens` (domain/token_fields.py): `name` (""), `size` (1 cell), `bars` and
`conditions` (JSON lists, NULL: none), `name_visibility` and `conditions_visibility`
("everyone"). Existing tokens keep what they showed: no name, no bars, no conditions.
`game_rooms.initiative`: the room's turn order (domain/initiative.py), NULL until first used.

The revision id lives only in `revision` below (db/migrate.py reads the head from these lines).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.add_column("game_rooms", sa.Column("initiative", _JSON, nullable=True))
    with op.batch_alter_table("board_tokens") as batch:
        batch.add_column(sa.Column("name", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("size", sa.Float(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("bars", _JSON, nullable=True))
        batch.add_column(sa.Column("conditions", _JSON, nullable=True))
        batch.add_column(sa.Column("name_visibility", sa.String(length=8), nullable=False,
                                   server_default="everyone"))
        batch.add_column(sa.Column("conditions_visibility", sa.String(length=8), nullable=False,
                                   server_default="everyone"))


def downgrade() -> None:
    with op.batch_alter_table("board_tokens") as batch:
        for column in ("conditions_visibility", "name_visibility", "conditions", "bars", "size", "name"):
            batch.drop_column(column)
    # not a batch: on SQLite a batch rebuilds the table, and with foreign keys on, dropping the old
    # game_rooms would cascade-delete every room's tokens, players and messages
    op.execute("ALTER TABLE game_rooms DROP COLUMN initiative")

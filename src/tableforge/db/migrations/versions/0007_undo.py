"""undo: what each stored token change needs to be undone, kept with its event

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Two columns on `room_events` (db/undo_log.py): `undo_by` (who may undo the change; NULL: the event
is not undoable) and `undo` (JSON text: the token, the version the change gave it and the prior
values; set to NULL once undone or refused). Never sent to clients: `since` and `history` read the
body, audience and variants only. Bounded with the room's history, which is pruned as it grows.

The revision id lives only in `revision` below (db/migrate.py reads the head from these lines).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("room_events", sa.Column("undo_by", sa.Uuid(as_uuid=False), nullable=True))
    op.add_column("room_events", sa.Column("undo", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("room_events") as batch:
        batch.drop_column("undo")
        batch.drop_column("undo_by")

"""maintenance runs: the record of every maintenance job run; indexes for dead-session cleanup

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

- `maintenance_runs`: one row per run of a maintenance job (services/maintenance), inserted as
  `running` and finished as `ok`, `failed` or `abandoned`. Two partial unique indexes: one running
  run per job, and one running-or-successful run per scheduled slot (job, slot), so no two
  instances (or a CLI process) can run a job at once or run one slot twice.
- `ix_sessions_expires_at`, `ix_sessions_revoked_at` (partial): the sessions job deletes expired
  and revoked sessions in batches; without them every batch would scan the whole table.

The revision id lives only in `revision` below (db/migrate.py reads the head from these lines).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_RUNNING = "outcome = 'running'"
_SLOT_TAKEN = "outcome IN ('running', 'ok')"


def upgrade() -> None:
    op.create_table(
        "maintenance_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(length=40), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=True),
        sa.Column("instance_id", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_runs")),
    )
    op.create_index("ix_maintenance_runs_job_id", "maintenance_runs", ["job", "id"])
    op.create_index("ux_maintenance_runs_running", "maintenance_runs", ["job"], unique=True,
                    postgresql_where=sa.text(_RUNNING), sqlite_where=sa.text(_RUNNING))
    op.create_index("ux_maintenance_runs_slot", "maintenance_runs", ["job", "slot"], unique=True,
                    postgresql_where=sa.text(_SLOT_TAKEN), sqlite_where=sa.text(_SLOT_TAKEN))
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
    op.create_index("ix_sessions_revoked_at", "sessions", ["revoked_at"],
                    postgresql_where=sa.text("revoked_at IS NOT NULL"), sqlite_where=sa.text("revoked_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_sessions_revoked_at", "sessions")
    op.drop_index("ix_sessions_expires_at", "sessions")
    op.drop_table("maintenance_runs")

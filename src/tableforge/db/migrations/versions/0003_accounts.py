"""accounts: case-insensitive unique usernames, disabled users, registration invites

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

- `ux_users_username_lower`: a unique index on lower(username), the same expression on SQLite
  and PostgreSQL (usernames are ASCII, `[A-Za-z0-9_.-]`, so both fold case identically).
  Existing rows that already collide (`Bob` and `bob`, made before this index) would make it
  fail, so the oldest account of each group keeps its name and every later one is renamed to
  `<name>~<first 6 hex of its id>` (cut to fit 32 characters). `~` is outside the username
  pattern, so the new name can never collide with one a user picks; the renamed user logs in
  with it (the password is unchanged) and an operator can rename them. Each rename is logged.
- `users.disabled_at`: set by `POST /api/admin/users/{id}/disable`.
- `registration_invites`: admin-made codes for TABLEFORGE_REGISTRATION=invite (hash only).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def _rename_case_duplicates() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, username FROM users WHERE lower(username) IN "
        "(SELECT lower(username) FROM users GROUP BY lower(username) HAVING count(*) > 1) "
        "ORDER BY lower(username), created_at, id")).all()
    seen: set[str] = set()
    for user_id, username in rows:
        folded = username.lower()
        if folded not in seen:
            seen.add(folded)  # the oldest keeps its name
            continue
        suffix = "~" + str(user_id).replace("-", "")[:6]
        new_name = username[: 32 - len(suffix)] + suffix
        bind.execute(sa.text("UPDATE users SET username = :new WHERE id = :id"), {"new": new_name, "id": user_id})
        log.warning("username %r collides with an older account regardless of case: renamed to %r",
                    username, new_name)


def upgrade() -> None:
    _rename_case_duplicates()
    op.create_index("ux_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
    op.add_column("users", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "registration_invites",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_registration_invites_created_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registration_invites")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_registration_invites_code_hash")),
    )
    # Deleting a user must not scan the invites for the ones they made.
    op.create_index(op.f("ix_registration_invites_created_by"), "registration_invites", ["created_by"])


def downgrade() -> None:
    op.drop_table("registration_invites")
    op.drop_index("ux_users_username_lower", "users")  # before the batch: SQLite rebuilds the table
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled_at")

"""Local identity: users, groups and memberships, TOTP enrolments (`users`, `groups`, `group_members`,
`user_totp`).

Revision ID: 0003_identity
Revises: 0002_vault
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_identity"
down_revision: str | None = "0002_vault"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here (not imported from portico.identity.user_tables) so this revision stays what it was when
# the tables change later.
_row_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", _row_id, primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("display_name", sa.Text()),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("subject", name="uq_users_subject"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "groups",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_groups"),
    )
    op.create_table(
        "group_members",
        sa.Column("user_id", _row_id, nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "group_name", name="pk_group_members"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_group_members_user_id_users", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["group_name"], ["groups.name"], name="fk_group_members_group_name_groups", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_group_members_group_name", "group_members", ["group_name"])
    op.create_table(
        "user_totp",
        sa.Column("user_id", _row_id, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("last_step", sa.BigInteger()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "state", name="pk_user_totp"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_user_totp_user_id_users", ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("user_totp")
    op.drop_index("ix_group_members_group_name", table_name="group_members")
    op.drop_table("group_members")
    op.drop_table("groups")
    op.drop_table("users")

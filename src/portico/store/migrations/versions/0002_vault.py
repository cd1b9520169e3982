"""Credential vault: one AES-GCM envelope per (scope, name) (`vault_secrets`).

Revision ID: 0002_vault
Revises: 0001_audit
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_vault"
down_revision: str | None = "0001_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here (not imported from portico.vault.tables) so this revision stays what it was when the
# table changes later.


def upgrade() -> None:
    op.create_table(
        "vault_secrets",
        sa.Column("scope", sa.String(512), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "name", name="pk_vault_secrets"),
    )
    op.create_index("ix_vault_secrets_key_id", "vault_secrets", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_vault_secrets_key_id", table_name="vault_secrets")
    op.drop_table("vault_secrets")

"""Spent connect tickets of per-user upstream OAuth (`connect_tickets`).

Revision ID: 0006_connect_tickets
Revises: 0005_devices
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_connect_tickets"
down_revision: str | None = "0005_devices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Spelled out here (not imported from portico.upstream.connect_tables) so this revision stays what it was.
def upgrade() -> None:
    op.create_table(
        "connect_tickets",
        sa.Column("nonce_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce_hash", name="pk_connect_tickets"),
    )
    op.create_index("ix_connect_tickets_expires_at", "connect_tickets", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_connect_tickets_expires_at", table_name="connect_tickets")
    op.drop_table("connect_tickets")

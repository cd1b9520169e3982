"""Tool pins: approved and last-seen tool definitions per server (`tool_pins`).

Revision ID: 0007_tool_pins
Revises: 0006_connect_tickets
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_tool_pins"
down_revision: str | None = "0006_connect_tickets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Spelled out here (not imported from portico.catalog.pin_tables) so this revision stays what it was.
def upgrade() -> None:
    op.create_table(
        "tool_pins",
        sa.Column("server_id", sa.String(48), nullable=False),
        sa.Column("tool", sa.String(512), nullable=False),
        sa.Column("pinned_hash", sa.String(64)),
        sa.Column("pinned_definition", sa.Text()),
        sa.Column("pinned_at", sa.DateTime(timezone=True)),
        sa.Column("pinned_by", sa.String(255)),
        sa.Column("seen_hash", sa.String(64), nullable=False),
        sa.Column("seen_definition", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("server_id", "tool", name="pk_tool_pins"),
    )


def downgrade() -> None:
    op.drop_table("tool_pins")

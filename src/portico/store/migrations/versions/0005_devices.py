"""Device registry: enrolled client certificates (`devices`).

Revision ID: 0005_devices
Revises: 0004_oauth
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_devices"
down_revision: str | None = "0004_oauth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Spelled out here (not imported from portico.identity.device_tables) so this revision stays what it was when
# the table changes later.
def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("last_seen", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint("fingerprint", name="uq_devices_fingerprint"),
    )
    op.create_index("ix_devices_owner", "devices", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_devices_owner", table_name="devices")
    op.drop_table("devices")

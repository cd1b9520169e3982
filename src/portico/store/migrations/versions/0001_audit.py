"""Audit log: one hash chain per writer node (`audit_records`) and each chain's head (`audit_nodes`).

Revision ID: 0001_audit
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_audit"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here (not imported from portico.store.tables) so this revision stays what it was when the
# tables change later.
_row_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("row_id", _row_id, primary_key=True, autoincrement=True),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.Text()),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text()),
        sa.Column("authenticated_by", sa.Text(), nullable=False),
        sa.Column("ip", sa.Text()),
        sa.Column("session_id", sa.Text()),
        sa.Column("scope", sa.Text()),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("server_id", sa.Text()),
        sa.Column("target", sa.Text()),
        sa.Column("decision", sa.Text()),
        sa.Column("rule", sa.Text()),
        sa.Column("reason", sa.Text()),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("error_code", sa.BigInteger()),
        sa.Column("latency_us", sa.BigInteger(), nullable=False),
        sa.Column("request_bytes", sa.BigInteger(), nullable=False),
        sa.Column("response_bytes", sa.BigInteger(), nullable=False),
        sa.Column("args_digest", sa.Text()),
        sa.Column("arg_keys", _json, nullable=False),
        sa.Column("protocol_version", sa.Text()),
        sa.Column("era", sa.Text()),
        sa.Column("extra", _json),
        sa.PrimaryKeyConstraint("row_id", name="pk_audit_records"),
        sa.UniqueConstraint("node", "seq", name="uq_audit_records_node_seq"),
    )
    op.create_index("ix_audit_records_ts", "audit_records", ["ts"])
    op.create_index("ix_audit_records_id", "audit_records", ["id"])
    op.create_index("ix_audit_records_subject_ts", "audit_records", ["subject", "ts"])
    op.create_table(
        "audit_nodes",
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("head_seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node", name="pk_audit_nodes"),
    )


def downgrade() -> None:
    op.drop_table("audit_nodes")
    op.drop_index("ix_audit_records_subject_ts", table_name="audit_records")
    op.drop_index("ix_audit_records_id", table_name="audit_records")
    op.drop_index("ix_audit_records_ts", table_name="audit_records")
    op.drop_table("audit_records")

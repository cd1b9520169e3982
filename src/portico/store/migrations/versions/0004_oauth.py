"""Embedded OAuth authorization server: clients, pending requests, codes, token families, refresh tokens,
issued and revoked access-token ids, login sessions, remembered consent (`oauth_*`).

Revision ID: 0004_oauth
Revises: 0003_identity
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_oauth"
down_revision: str | None = "0003_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here (not imported from portico.identity.authserver.tables) so this revision stays what it was
# when the tables change later.
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ts = sa.DateTime(timezone=True)
_hash = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("secret_hash", _hash),
        sa.Column("client_name", sa.Text()),
        sa.Column("token_endpoint_auth_method", sa.String(32), nullable=False),
        sa.Column("redirect_uris", _json, nullable=False),
        sa.Column("grant_types", _json, nullable=False),
        sa.Column("scope", sa.Text()),
        sa.Column("registration", _json, nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_oauth_clients"),
    )
    op.create_table(
        "oauth_requests",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("browser_hash", _hash, nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("client_name", sa.Text()),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("state", sa.Text()),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("username", sa.Text()),
        sa.Column("sealed_password", sa.LargeBinary()),
        sa.Column("identity", _json),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("expires_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_requests"),
    )
    op.create_index("ix_oauth_requests_expires_at", "oauth_requests", ["expires_at"])
    op.create_table(
        "oauth_codes",
        sa.Column("code_hash", _hash, nullable=False),
        sa.Column("family_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("identity", _json, nullable=False),
        sa.Column("expires_at", _ts, nullable=False),
        sa.Column("used_at", _ts),
        sa.PrimaryKeyConstraint("code_hash", name="pk_oauth_codes"),
    )
    op.create_index("ix_oauth_codes_expires_at", "oauth_codes", ["expires_at"])
    op.create_table(
        "oauth_families",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("identity", _json, nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("expires_at", _ts, nullable=False),
        sa.Column("revoked_at", _ts),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_families"),
    )
    op.create_index("ix_oauth_families_expires_at", "oauth_families", ["expires_at"])
    op.create_table(
        "oauth_refresh_tokens",
        sa.Column("token_hash", _hash, nullable=False),
        sa.Column("family_id", sa.String(64), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("expires_at", _ts, nullable=False),
        sa.Column("used_at", _ts),
        sa.PrimaryKeyConstraint("token_hash", name="pk_oauth_refresh_tokens"),
    )
    op.create_index("ix_oauth_refresh_tokens_family_id", "oauth_refresh_tokens", ["family_id"])
    op.create_index("ix_oauth_refresh_tokens_expires_at", "oauth_refresh_tokens", ["expires_at"])
    op.create_table(
        "oauth_access_tokens",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("family_id", sa.String(64), nullable=False),
        sa.Column("expires_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_oauth_access_tokens"),
    )
    op.create_index("ix_oauth_access_tokens_family_id", "oauth_access_tokens", ["family_id"])
    op.create_index("ix_oauth_access_tokens_expires_at", "oauth_access_tokens", ["expires_at"])
    op.create_table(
        "oauth_revoked_tokens",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("expires_at", _ts, nullable=False),
        sa.Column("revoked_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_oauth_revoked_tokens"),
    )
    op.create_index("ix_oauth_revoked_tokens_revoked_at", "oauth_revoked_tokens", ["revoked_at"])
    op.create_index("ix_oauth_revoked_tokens_expires_at", "oauth_revoked_tokens", ["expires_at"])
    op.create_table(
        "oauth_sessions",
        sa.Column("id_hash", _hash, nullable=False),
        sa.Column("identity", _json, nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("last_seen_at", _ts, nullable=False),
        sa.Column("expires_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name="pk_oauth_sessions"),
    )
    op.create_index("ix_oauth_sessions_expires_at", "oauth_sessions", ["expires_at"])
    op.create_table(
        "oauth_consents",
        sa.Column("key_hash", _hash, nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name="pk_oauth_consents"),
    )


def downgrade() -> None:
    op.drop_table("oauth_consents")
    op.drop_index("ix_oauth_sessions_expires_at", table_name="oauth_sessions")
    op.drop_table("oauth_sessions")
    op.drop_index("ix_oauth_revoked_tokens_expires_at", table_name="oauth_revoked_tokens")
    op.drop_index("ix_oauth_revoked_tokens_revoked_at", table_name="oauth_revoked_tokens")
    op.drop_table("oauth_revoked_tokens")
    op.drop_index("ix_oauth_access_tokens_expires_at", table_name="oauth_access_tokens")
    op.drop_index("ix_oauth_access_tokens_family_id", table_name="oauth_access_tokens")
    op.drop_table("oauth_access_tokens")
    op.drop_index("ix_oauth_refresh_tokens_expires_at", table_name="oauth_refresh_tokens")
    op.drop_index("ix_oauth_refresh_tokens_family_id", table_name="oauth_refresh_tokens")
    op.drop_table("oauth_refresh_tokens")
    op.drop_index("ix_oauth_families_expires_at", table_name="oauth_families")
    op.drop_table("oauth_families")
    op.drop_index("ix_oauth_codes_expires_at", table_name="oauth_codes")
    op.drop_table("oauth_codes")
    op.drop_index("ix_oauth_requests_expires_at", table_name="oauth_requests")
    op.drop_table("oauth_requests")
    op.drop_table("oauth_clients")

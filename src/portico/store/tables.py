"""Every table Portico stores, defined once (SQLAlchemy Core). Alembic migrations must match this file;
`tests/store` checks that they do on both backends.

The audit log is designed for many writers: each Portico process ("node") appends to its own hash chain,
numbered by its own `seq`, so replicas sharing one PostgreSQL never contend for a global counter or a global
"last hash". `audit_nodes` holds each chain's head, updated in the same transaction as the rows it covers: it
lets a restarted node resume its chain cheaply, lets `verify` notice rows cut off the end of a chain, and makes
two processes that wrongly share a node id fail loudly instead of forking the chain.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

# Columns fed by clients or upstreams are Text: a value that does not fit must never wedge the audit flusher.
# Stable constraint names, so migrations (and SQLite batch mode) can refer to them on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
RowId = BigInteger().with_variant(Integer(), "sqlite")
# PostgreSQL `json` keeps text verbatim and cannot be indexed; `jsonb` is what we want there.
Json = JSON().with_variant(JSONB(), "postgresql")

audit_records = Table(
    "audit_records",
    metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("node", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("id", Text, nullable=False),
    Column("parent_id", Text),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("subject", Text, nullable=False),
    Column("client_id", Text),
    Column("authenticated_by", Text, nullable=False),
    Column("ip", Text),
    Column("session_id", Text),
    Column("scope", Text),
    Column("method", Text, nullable=False),
    Column("server_id", Text),
    Column("target", Text),
    Column("decision", Text),
    Column("rule", Text),
    Column("reason", Text),
    Column("outcome", Text, nullable=False),
    Column("error_code", BigInteger),
    Column("latency_us", BigInteger, nullable=False),
    Column("request_bytes", BigInteger, nullable=False),
    Column("response_bytes", BigInteger, nullable=False),
    Column("args_digest", Text),
    Column("arg_keys", Json, nullable=False),
    Column("protocol_version", Text),
    Column("era", Text),
    Column("extra", Json),
    UniqueConstraint("node", "seq"),
    Index(None, "ts"),
    Index(None, "id"),
    Index(None, "subject", "ts"),
)

audit_nodes = Table(
    "audit_nodes",
    metadata,
    Column("node", String(64), primary_key=True),
    Column("head_seq", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

"""The vault's table, on the same `MetaData` as every other table (`portico.store.tables.metadata`).

`vault_secrets` holds one row per `(scope, name)`: the envelope of `portico.vault.crypto` (key id, nonce,
ciphertext with its tag) and when it was written. No column ever holds a value in the clear. The scope leaves
room for per-user upstream credentials (`user:<subject>:server:<id>`) beside static per-server ones
(`server:<id>`); migration `0002_vault` creates it.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, LargeBinary, String, Table

from portico.store.tables import metadata
from portico.vault.model import MAX_NAME_CHARS, MAX_SCOPE_CHARS

vault_secrets = Table(
    "vault_secrets",
    metadata,
    Column("scope", String(MAX_SCOPE_CHARS), primary_key=True),
    Column("name", String(MAX_NAME_CHARS), primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "key_id"),  # rotation and "which rows still use key X" look rows up by key
)

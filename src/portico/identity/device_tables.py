"""Enrolled devices, on the shared `MetaData` (`portico.store.tables`).

* `devices`: one row per device certificate ever enrolled. `id` is Portico's name for the device (`dev_` and
  16 hex digits: what `Principal.device_id` and the audit log carry); `fingerprint` the SHA-256 of the
  certificate's DER (64 lowercase hex digits, unique: a certificate is enrolled once, and a revoked one stays
  revoked); `owner` the subject the device belongs to; `state` `enrolled` or `revoked`. `last_seen` is
  updated at most every `devices.last_seen_interval_s`.

Migration `0005_devices` creates this table.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, String, Table, Text, UniqueConstraint

from portico.store.tables import metadata

MAX_OWNER_CHARS = 255

devices = Table(
    "devices",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("owner", String(MAX_OWNER_CHARS), nullable=False),
    Column("name", Text),
    Column("state", String(16), nullable=False),  # "enrolled" | "revoked"
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_seen", DateTime(timezone=True)),
    UniqueConstraint("fingerprint"),
    Index(None, "owner"),
)

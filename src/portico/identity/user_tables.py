"""Local users, their groups and their TOTP enrolments, on the shared `MetaData` (`portico.store.tables`).

* `users`: one row per local account. `username` is what the person types (lowercase); `subject` is the
  stable identity tokens, policy and the audit log name (the username unless set otherwise). Only an Argon2id
  hash of the password is stored. `failed_logins` counts consecutive failures since the last success or
  lockout; `locked_until` is set when it reaches the limit.
* `groups`, `group_members`: many-to-many membership. A group exists once someone has been added to it.
* `user_totp`: at most one `pending` (enrolment begun, no code confirmed yet) and one `active` TOTP secret
  per user, each sealed with the vault's AES-256-GCM (`portico.vault.crypto`) at address
  (`user:<subject>`, `totp`): key id, nonce, ciphertext. `last_step` is the last time step accepted, which
  refuses replayed codes.

Migration `0003_identity` creates these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from portico.store.tables import RowId, metadata

MAX_USERNAME_CHARS = 128
MAX_SUBJECT_CHARS = 255
MAX_GROUP_CHARS = 64

users = Table(
    "users",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("subject", String(MAX_SUBJECT_CHARS), nullable=False),
    Column("username", String(MAX_USERNAME_CHARS), nullable=False),
    Column("display_name", Text),
    Column("password_hash", Text, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("failed_logins", Integer, nullable=False),
    Column("locked_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("subject"),
    UniqueConstraint("username"),
)

groups = Table(
    "groups",
    metadata,
    Column("name", String(MAX_GROUP_CHARS), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("user_id", RowId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_name", String(MAX_GROUP_CHARS), ForeignKey("groups.name", ondelete="CASCADE"), primary_key=True),
    Index(None, "group_name"),  # "who is in group g" without scanning every membership
)

user_totp = Table(
    "user_totp",
    metadata,
    Column("user_id", RowId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("state", String(16), primary_key=True),  # "pending" | "active"
    Column("key_id", String(32), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("last_step", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

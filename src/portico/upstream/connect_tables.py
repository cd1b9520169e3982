"""Spent connect tickets (`connect_tickets`), on the shared `MetaData`: a ticket is single use across every
Portico process on the store. Only a hash of the ticket's nonce is kept, until the ticket would have expired.

Migration `0006_connect_tickets` creates the table.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, String, Table

from portico.store.tables import metadata

connect_tickets = Table(
    "connect_tickets",
    metadata,
    Column("nonce_hash", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_connect_tickets_expires_at", "expires_at"),
)

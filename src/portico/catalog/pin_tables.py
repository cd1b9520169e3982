"""Tool pins (`tool_pins`), on the shared `MetaData` (`portico.store.tables`).

One row per (server, upstream tool name) Portico has ever seen. `pinned_*` is the definition an administrator
(or trust on first use) approved: its `pin_hash`, the canonical JSON it was computed from, when and by whom.
`seen_*` is the definition the upstream served most recently, with the poisoning scan's findings for it (a JSON
list). A tool is servable exactly when `pinned_hash = seen_hash`; otherwise it is held (new, or changed since it
was approved: a rug pull until proven otherwise). Rows are never deleted when a tool disappears upstream, so a
tool that comes back with its approved definition is served again without review.

Migration `0007_tool_pins` creates this table.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, String, Table, Text

from portico.store.tables import metadata

MAX_TOOL_CHARS = 512

tool_pins = Table(
    "tool_pins",
    metadata,
    Column("server_id", String(48), primary_key=True),
    Column("tool", String(MAX_TOOL_CHARS), primary_key=True),
    Column("pinned_hash", String(64)),
    Column("pinned_definition", Text),
    Column("pinned_at", DateTime(timezone=True)),
    Column("pinned_by", String(255)),
    Column("seen_hash", String(64), nullable=False),
    Column("seen_definition", Text, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("findings", Text, nullable=False),
)

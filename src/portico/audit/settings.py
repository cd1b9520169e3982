"""The `audit:` section of `portico.yaml`: where the spool lives, how often it is flushed, and whose chain it is.

Relative paths are relative to the working directory, like the default SQLite URL.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

NODE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class AuditSettings(BaseModel):
    """How the audit log spools, batches and identifies its writer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spool_dir: Path = Field(
        default=Path(".portico/audit-spool"),
        description="Directory of the append-only spool: every record is written here before the call is "
        "acknowledged, then moved into the database in batches. Must be on persistent local disk.",
    )
    flush_interval_ms: int = Field(
        default=250,
        gt=0,
        le=60_000,
        description="Longest a spooled record waits before it is written to the database (durability does not "
        "depend on it: a call is acknowledged only once its record is in the spool).",
    )
    batch_max: int = Field(default=500, gt=0, le=10_000, description="Most records per database transaction.")
    fsync: bool = Field(
        default=False,
        description="fsync the spool after every record, so acknowledged calls also survive power loss or an OS "
        "crash (without it they survive the Portico process being killed). Much slower: one disk flush per call.",
    )
    segment_max_bytes: int = Field(
        default=4 * 1024 * 1024, gt=0, description="Spool segment size after which a fresh segment is started."
    )
    hmac_key_env: str = Field(
        default="PORTICO_AUDIT_KEY",
        description="Environment variable holding the key for argument digests. If unset, a random key is "
        "generated once and kept in `key_file`. Replicas must share the key for their digests to compare.",
    )
    key_file: Path | None = Field(
        default=None,
        description="Where the generated argument-digest key is kept (mode 0600). Default: `audit.key` beside "
        "`spool_dir` (in its parent directory, the data directory).",
    )
    node_id: str | None = Field(
        default=None,
        description="This writer's chain id (letters, digits, `.`, `_`, `-`; at most 64). Default: a random id "
        "generated once and kept in `node_id_file`. Two running processes must never share one.",
    )
    node_id_file: Path | None = Field(
        default=None,
        description="Where the generated node id is kept. Default: `node-id` inside `spool_dir`, because a node's "
        "identity belongs with its spool (recovered records continue that node's chain).",
    )

    @field_validator("node_id")
    @classmethod
    def _node_id_shape(cls, value: str | None) -> str | None:
        if value is not None and not NODE_ID.fullmatch(value):
            raise ValueError("must be 1-64 of letters, digits, '.', '_' or '-'")
        return value

    @property
    def key_path(self) -> Path:
        """`key_file`, or its default beside the spool directory."""
        return self.key_file or self.spool_dir.parent / "audit.key"

    @property
    def node_id_path(self) -> Path:
        """`node_id_file`, or its default inside the spool directory."""
        return self.node_id_file or self.spool_dir / "node-id"

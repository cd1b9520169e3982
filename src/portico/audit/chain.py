"""From spool lines to chained database rows: the flusher's half of `AuditLog`.

A spool line is a JSON array: `[1, node, seq, ts_us, <the AuditRecord fields from id to extra, in
SPOOL_FIELDS order>]`, the leading 1 being the format version. `ChainWriter` turns a batch of them into rows,
links each to its node's previous hash, and inserts them in one transaction that also moves the node's head
in `audit_nodes` (guarded, so two processes claiming one node id cannot both extend the chain).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import insert, select, update

from portico.audit.model import GENESIS_HASH, chain_hash, clean_json, clean_text, format_ts, ts_from_us
from portico.audit.settings import NODE_ID
from portico.errors import PorticoError
from portico.store.db import Store
from portico.store.tables import audit_nodes, audit_records

log = logging.getLogger(__name__)

SPOOL_VERSION = 1
SPOOL_FIELDS = (
    "node", "seq", "ts_us", "id", "parent_id", "subject", "client_id", "authenticated_by", "ip", "session_id",
    "scope", "method", "server_id", "target", "decision", "rule", "reason", "outcome", "error_code", "latency_us",
    "request_bytes", "response_bytes", "args_digest", "arg_keys", "protocol_version", "era", "extra",
)  # fmt: skip
_INTS = frozenset({"seq", "ts_us", "latency_us", "request_bytes", "response_bytes"})
_INT_LIMITS = {"ts_us": 253_402_300_800_000_000}  # year 10000: beyond it, datetime overflows
_REQUIRED_TEXT = frozenset({"node", "id", "subject", "authenticated_by", "method", "outcome"})


class ChainConflictError(PorticoError):
    """Another process extended this node's chain: two writers share a node id. Nothing is committed."""

    default_public = "Internal error: audit chain conflict"


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str
    stored: bool  # whether `audit_nodes` has a row for it yet


def clean_spool_fields(fields: list[Any]) -> list[Any]:
    """`fields` with every value made JSON-encodable (the slow path of `AuditLog.append`)."""
    return [clean_json(v) for v in fields]


def parse_spool_lines(lines: list[bytes]) -> list[dict[str, Any]]:
    """Decode spool lines into record entries (all fields but `prev_hash`/`hash`, values cleaned).

    Lines that are not valid records are skipped and logged (by position only: they may hold client data).
    """
    entries: list[dict[str, Any]] = []
    for line in lines:
        try:
            entries.append(_parse(orjson.loads(line)))
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            log.warning("audit spool: skipped an unreadable record (%d bytes): %s", len(line), type(exc).__name__)
    return entries


def _parse(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, list) or len(raw) != len(SPOOL_FIELDS) + 1 or raw[0] != SPOOL_VERSION:
        raise ValueError("not a version-1 spool record")
    entry = dict(zip(SPOOL_FIELDS, raw[1:], strict=True))
    for name, value in entry.items():
        if name in _INTS:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _INT_LIMITS.get(name, 2**63):
                raise TypeError(name)
        elif name == "error_code":  # from an upstream: anything odd is dropped rather than wedge the flusher
            entry[name] = value if isinstance(value, int) and not isinstance(value, bool) and _fits(value) else None
        elif name == "arg_keys":
            entry[name] = sorted(clean_text(str(k)) for k in value) if isinstance(value, list) else []
        elif name == "extra":
            entry[name] = clean_json(value) if isinstance(value, dict) else None
        elif isinstance(value, str):
            entry[name] = clean_text(value)
        elif value is not None or name in _REQUIRED_TEXT:
            raise TypeError(name)
    if not NODE_ID.fullmatch(entry["node"]) or entry["seq"] < 1:
        raise ValueError("node or seq out of range")
    return entry


def _fits(value: int) -> bool:
    return -(2**63) <= value < 2**63


class ChainWriter:
    """Links entries into per-node chains and commits them. Single writer per node; not concurrency-safe."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._heads: dict[str, Head] = {}
        # Heads of a commit whose fate is unknown (connection lost or cancelled around COMMIT).
        self._uncertain: dict[str, Head] = {}

    def committed(self, node: str) -> int:
        """The last committed `seq` of `node` known to this writer (0 if none)."""
        head = self._heads.get(node)
        return head.seq if head else 0

    async def head(self, node: str) -> int:
        """Load (once) and return the committed head `seq` of `node`.

        Raises:
            ChainConflictError: the node has records but no head row (tampering or a partial restore).
        """
        if node not in self._heads:
            self._heads[node] = await self._load_head(node)
        return self._heads[node].seq

    async def commit(self, entries: list[dict[str, Any]]) -> None:
        """Chain and insert `entries` (in spool order) in one transaction. Entries already committed are
        skipped (recovery after a crash re-reads them). Nothing changes if the transaction fails.

        Raises:
            ChainConflictError: another process moved this node's head.
            sqlalchemy.exc.SQLAlchemyError, OSError: the database failed.
        """
        if self._uncertain:
            await self._settle()
        for node in {e["node"] for e in entries}:
            await self.head(node)
        heads = dict(self._heads)
        rows: list[dict[str, Any]] = []
        for entry in entries:
            head = heads[entry["node"]]
            if entry["seq"] <= head.seq:
                continue
            if entry["seq"] != head.seq + 1:
                log.error("audit: chain %s jumps from seq %d to %d: spooled records were lost", entry["node"],
                          head.seq, entry["seq"])  # fmt: skip
            ts = ts_from_us(entry["ts_us"])
            doc = {k: v for k, v in entry.items() if k != "ts_us"}
            doc["ts"], doc["prev_hash"] = format_ts(ts), head.hash
            digest = chain_hash(head.hash, doc)
            rows.append({**doc, "ts": ts, "hash": digest})
            heads[entry["node"]] = Head(entry["seq"], digest, head.stored)
        if not rows:
            return
        try:
            await self._write(rows, heads)
        except BaseException:
            self._uncertain = {n: h for n, h in heads.items() if h is not self._heads[n]}
            raise
        self._heads = {node: Head(h.seq, h.hash, stored=True) for node, h in heads.items()}

    async def _write(self, rows: list[dict[str, Any]], heads: dict[str, Head]) -> None:
        now = datetime.now(UTC)
        async with self.store.engine.begin() as conn:
            await conn.execute(insert(audit_records), rows)
            for node, head in heads.items():
                before = self._heads[node]
                if head is before:
                    continue
                values = {"head_seq": head.seq, "head_hash": head.hash, "updated_at": now}
                if before.stored:
                    guard = (audit_nodes.c.node == node) & (audit_nodes.c.head_seq == before.seq)
                    result = await conn.execute(update(audit_nodes).where(guard).values(values))
                    if result.rowcount != 1:
                        raise ChainConflictError(detail=f"audit chain {node} was extended by another process")
                else:
                    await conn.execute(insert(audit_nodes).values(node=node, **values))

    async def _settle(self) -> None:
        """After a failed commit, learn from the database whether it landed after all."""
        for node, attempted in self._uncertain.items():
            actual = await self._load_head(node)
            known = self._heads[node]
            if (actual.seq, actual.hash) == (attempted.seq, attempted.hash):
                self._heads[node] = actual  # it did: those records are in, do not write them again
            elif (actual.seq, actual.hash) != (known.seq, known.hash):
                raise ChainConflictError(detail=f"audit chain {node} was extended by another process")
        self._uncertain = {}

    async def _load_head(self, node: str) -> Head:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(audit_nodes).where(audit_nodes.c.node == node))).first()
            if row is not None:
                return Head(row.head_seq, row.head_hash, stored=True)
            orphan = await conn.scalar(select(audit_records.c.seq).where(audit_records.c.node == node).limit(1))
        if orphan is not None:
            raise ChainConflictError(
                detail=f"audit chain {node} has records but no head row: the database was edited or partially "
                "restored; set audit.node_id to start a new chain"
            )
        return Head(0, GENESIS_HASH, stored=False)

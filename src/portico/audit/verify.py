"""Reading the audit log back: `verify` the chains, `tail` the newest records, `export` JSON lines.

`verify` walks each node's chain in `seq` order and stops at the first record that breaks it, naming why:

- `missing`: a `seq` is skipped (records were deleted);
- `edited`: the record's content does not hash to its `hash`;
- `reordered`: the record links to a different predecessor than the one before it, or it was stored
  (`row_id`) out of `seq` order;
- `broken_link`: its `prev_hash` is not the previous record's hash and matches no other record;
- `truncated` / `head_mismatch` / `no_head`: the chain's end disagrees with the head kept in `audit_nodes`.

What a hash chain cannot show: an attacker with write access who rewrites a chain from some record onward
*and* recomputes every later hash and the head. Anchoring heads outside the database (exporting them, signing
checkpoints) closes that gap; it is not done here.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

import anyio
import orjson
from sqlalchemy import Row, func, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from portico.audit.model import GENESIS_HASH, AuditRecord
from portico.store.db import Store
from portico.store.tables import audit_nodes, audit_records


class ProblemKind(enum.StrEnum):
    MISSING = "missing"
    EDITED = "edited"
    REORDERED = "reordered"
    BROKEN_LINK = "broken_link"
    TRUNCATED = "truncated"
    HEAD_MISMATCH = "head_mismatch"
    NO_HEAD = "no_head"


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first thing wrong with one node's chain. `seq`/`record_id` locate it when a record is at fault."""

    node: str
    kind: ProblemKind
    reason: str
    seq: int | None = None
    record_id: str | None = None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of `verify`: how much was checked and the first problem of each broken chain."""

    nodes: int
    records: int
    problems: tuple[ChainProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line per problem, or one line saying the log is intact."""
        if self.ok:
            return f"audit log intact: {self.records} records in {self.nodes} chain(s)"
        return "\n".join(f"chain {p.node}: {p.kind.value}: {p.reason}" for p in self.problems)


def record_from_row(row: Row[Any] | Mapping[str, Any]) -> AuditRecord:
    """Build an `AuditRecord` from a row of `audit_records` (timestamps normalised to aware UTC)."""
    m = row._mapping if isinstance(row, Row) else row
    ts: datetime = m["ts"]
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)  # SQLite hands back naive UTC
    fields = {name: m[name] for name in AuditRecord.__dataclass_fields__}
    fields.update(ts=ts, arg_keys=tuple(m["arg_keys"] or ()))
    return AuditRecord(**fields)


async def verify(store: Store, node: str | None = None) -> VerifyReport:
    """Check every chain (or only `node`'s) for edited, deleted, reordered or truncated records.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    async with store.engine.connect() as conn:
        if node is None:
            query = union(select(audit_nodes.c.node), select(audit_records.c.node).distinct())
            nodes = sorted((await conn.execute(query)).scalars())
        else:
            nodes = [node]
        total = 0
        problems: list[ChainProblem] = []
        for name in nodes:
            count, problem = await _verify_chain(conn, name)
            total += count
            if problem is not None:
                problems.append(problem)
    return VerifyReport(len(nodes), total, tuple(problems))


async def _verify_chain(conn: AsyncConnection, node: str) -> tuple[int, ChainProblem | None]:
    expected, prev_hash, last_row_id, count = 1, GENESIS_HASH, -1, 0
    stmt = select(audit_records).where(audit_records.c.node == node).order_by(audit_records.c.seq)
    result = await conn.stream(stmt.execution_options(yield_per=1000))
    async for row in result:
        count += 1
        rec = record_from_row(row)
        intact = rec.seq == expected and rec.computed_hash() == rec.hash and rec.prev_hash == prev_hash
        if intact and row.row_id > last_row_id:
            expected, prev_hash, last_row_id = expected + 1, rec.hash, row.row_id
            continue
        await result.close()  # stop at the first problem; free the cursor before asking anything else
        if rec.seq != expected:
            gap = f"{expected}" if rec.seq == expected + 1 else f"{expected}..{rec.seq - 1}"
            kind, reason = ProblemKind.MISSING, f"seq {gap} missing before seq {rec.seq} (deleted)"
        elif rec.computed_hash() != rec.hash or rec.prev_hash != prev_hash:
            kind, reason = await _explain(conn, rec, prev_hash)
        else:
            kind, reason = ProblemKind.REORDERED, f"seq {rec.seq} is stored before seq {rec.seq - 1}"
        return count, ChainProblem(node, kind, reason, rec.seq, rec.id)
    head = (await conn.execute(select(audit_nodes).where(audit_nodes.c.node == node))).first()
    last = expected - 1
    if head is None:
        return count, ChainProblem(node, ProblemKind.NO_HEAD, f"{count} records but no head row in audit_nodes")
    if head.head_seq > last:
        return count, ChainProblem(
            node, ProblemKind.TRUNCATED, f"the head is seq {head.head_seq} but the chain ends at seq {last} (deleted)"
        )
    if head.head_seq < last or head.head_hash != prev_hash:
        return count, ChainProblem(
            node, ProblemKind.HEAD_MISMATCH, f"the head (seq {head.head_seq}) does not match the last record"
        )
    return count, None


async def _explain(conn: AsyncConnection, rec: AuditRecord, prev_hash: str) -> tuple[ProblemKind, str]:
    """Name what is wrong with a record that fails its hash or its link."""
    if rec.prev_hash != prev_hash:
        # Whose successor does this record claim to be? If another record's, it was moved.
        stmt = select(audit_records.c.seq).where(
            (audit_records.c.node == rec.node) & (audit_records.c.hash == rec.prev_hash)
        )
        actual = (await conn.execute(stmt)).scalar()
        if actual is not None and actual != rec.seq - 1:
            return ProblemKind.REORDERED, f"seq {rec.seq} holds the record that follows seq {actual}"
        if rec.computed_hash() == rec.hash:
            return ProblemKind.BROKEN_LINK, f"seq {rec.seq} does not link to seq {rec.seq - 1}"
    return ProblemKind.EDITED, f"seq {rec.seq} does not match its hash (edited)"


async def tail(
    store: Store, n: int = 20, *, follow: bool = False, poll_s: float = 0.5
) -> AsyncIterator[list[AuditRecord]]:
    """Yield the newest `n` records as one batch (oldest first, in commit order across nodes; possibly empty);
    with `follow`, then each later poll's new records as a batch, every `poll_s` seconds, until the caller
    stops iterating. Batches let a viewer tell the backlog from what arrives live.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    t = audit_records
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(t).order_by(t.c.row_id.desc()).limit(n))).all() if n > 0 else []
        last = await conn.scalar(select(func.max(t.c.row_id))) or 0
    yield [record_from_row(row) for row in reversed(rows)]
    while follow:
        await anyio.sleep(poll_s)
        async with store.engine.connect() as conn:
            rows = (await conn.execute(select(t).where(t.c.row_id > last).order_by(t.c.row_id))).all()
        if rows:
            last = rows[-1].row_id
            yield [record_from_row(row) for row in rows]


async def export(store: Store, out: BinaryIO, since: datetime | None = None) -> int:
    """Write every record (from `since`, if given) to `out` as JSON lines in commit order; return the count.

    Each line is `AuditRecord.to_json()` with sorted keys: drop `hash` and hash the rest as the module
    docstring of `portico.audit.model` says, and an auditor can check the export without Portico.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    t = audit_records
    stmt = select(t).order_by(t.c.row_id)
    if since is not None:
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        stmt = stmt.where(t.c.ts >= since)
    count = 0
    async with store.engine.connect() as conn:
        result = await conn.stream(stmt.execution_options(yield_per=1000))
        async for row in result:
            out.write(
                orjson.dumps(record_from_row(row).to_json(), option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
            )
            count += 1
    return count

"""verify, tail and export on both backends; tampering done with raw SQL, as an attacker with DB access would."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from portico.audit import AuditLog, AuditSettings, ProblemKind
from portico.audit.model import chain_hash
from portico.audit.verify import export, tail, verify
from portico.store import Store
from portico.store.tables import audit_records
from tests.audit.support import append_many, flushed, records, sql

pytestmark = pytest.mark.anyio
ONE_NODE = "WHERE node = :node AND seq = :seq"


async def _chain(store: Store, tmp_path: Path, count: int = 6, **fields: Any) -> str:
    """Write a fresh chain of `count` records under a new node id; return the node id."""
    node = f"n-{uuid.uuid4().hex[:12]}"
    settings = AuditSettings(spool_dir=tmp_path / node, node_id=node, flush_interval_ms=10)
    async with AuditLog(store, settings, env={}) as log:
        append_many(log, count, **fields)
    return node


async def _first_problem(store: Store, node: str) -> tuple[ProblemKind, int | None]:
    report = await verify(store, node)
    assert not report.ok
    [problem] = report.problems
    assert problem.node == node
    return problem.kind, problem.seq


async def test_an_untouched_log_verifies(store: Store, tmp_path: Path) -> None:
    nodes = [await _chain(store, tmp_path) for _ in range(3)]
    report = await verify(store)
    assert report.ok
    assert (report.nodes, report.records) == (3, 18)
    assert "intact" in report.summary()
    assert (await verify(store, nodes[0])).records == 6


async def test_an_empty_log_verifies(store: Store) -> None:
    assert (await verify(store)).ok


@pytest.mark.parametrize(
    ("column", "value"),
    [("subject", "mallory"), ("target", "rm_rf"), ("decision", "allow"), ("outcome", "ok"), ("reason", None),
     ("latency_us", 1), ("response_bytes", 0), ("arg_keys", '["zz"]'), ("extra", '{"a": 1}'), ("hash", "0" * 64)],
)  # fmt: skip
async def test_editing_a_field_is_detected_at_that_record(
    store: Store, tmp_path: Path, column: str, value: Any
) -> None:
    node = await _chain(store, tmp_path, decision="deny", outcome="denied", reason="no")
    await sql(store, f"UPDATE audit_records SET {column} = :v {ONE_NODE}", v=value, node=node, seq=3)
    assert await _first_problem(store, node) == (ProblemKind.EDITED, 3)


async def test_editing_the_timestamp_is_detected(store: Store, tmp_path: Path) -> None:
    node = await _chain(store, tmp_path)
    later = datetime.now(UTC) + timedelta(days=1)
    async with store.engine.begin() as conn:
        t = audit_records
        await conn.execute(update(t).where((t.c.node == node) & (t.c.seq == 2)).values(ts=later))
    assert await _first_problem(store, node) == (ProblemKind.EDITED, 2)


async def test_deleting_a_record_is_detected(store: Store, tmp_path: Path) -> None:
    node = await _chain(store, tmp_path)
    await sql(store, f"DELETE FROM audit_records {ONE_NODE}", node=node, seq=3)
    assert await _first_problem(store, node) == (ProblemKind.MISSING, 4)


async def test_deleting_the_newest_records_is_detected(store: Store, tmp_path: Path) -> None:
    node = await _chain(store, tmp_path)
    await sql(store, "DELETE FROM audit_records WHERE node = :node AND seq >= 5", node=node)
    kind, _ = await _first_problem(store, node)
    assert kind is ProblemKind.TRUNCATED


async def test_swapping_two_records_places_in_the_chain_is_detected(store: Store, tmp_path: Path) -> None:
    node = await _chain(store, tmp_path)
    for old, new in ((3, -1), (4, 3), (-1, 4)):
        await sql(store, "UPDATE audit_records SET seq = :new WHERE node = :node AND seq = :old",
                  new=new, old=old, node=node)  # fmt: skip
    assert await _first_problem(store, node) == (ProblemKind.REORDERED, 3)


async def test_swapping_two_records_storage_order_is_detected(store: Store, tmp_path: Path) -> None:
    node = await _chain(store, tmp_path)
    [r3, r4] = [r for r in await records(store, node) if r.seq in (3, 4)]
    ids = {}
    for rec in (r3, r4):
        async with store.engine.connect() as conn:
            t = audit_records
            ids[rec.seq] = await conn.scalar(t.select().with_only_columns(t.c.row_id).where(t.c.hash == rec.hash))
    await sql(store, "UPDATE audit_records SET row_id = -1 WHERE row_id = :a", a=ids[3])
    await sql(store, "UPDATE audit_records SET row_id = :a WHERE row_id = :b", a=ids[3], b=ids[4])
    await sql(store, "UPDATE audit_records SET row_id = :b WHERE row_id = -1", b=ids[4])
    assert await _first_problem(store, node) == (ProblemKind.REORDERED, 4)


async def test_a_consistent_rewrite_that_forgets_the_head_is_detected(store: Store, tmp_path: Path) -> None:
    node = await _chain(store, tmp_path)
    chain = await records(store, node)
    prev = chain[1].hash
    for rec in chain[2:]:  # rewrite seq 3 onward and recompute every later hash, as a careful attacker would
        new_hash = chain_hash(prev, {**rec.document(), "subject": "mallory", "prev_hash": prev})
        await sql(store, f"UPDATE audit_records SET subject = 'mallory', prev_hash = :p, hash = :h {ONE_NODE}",
                  p=prev, h=new_hash, node=node, seq=rec.seq)  # fmt: skip
        prev = new_hash
    kind, _ = await _first_problem(store, node)
    assert kind is ProblemKind.HEAD_MISMATCH


async def test_only_the_broken_chain_is_reported(store: Store, tmp_path: Path) -> None:
    good = await _chain(store, tmp_path)
    bad = await _chain(store, tmp_path)
    await sql(store, f"DELETE FROM audit_records {ONE_NODE}", node=bad, seq=1)
    report = await verify(store)
    assert [p.node for p in report.problems] == [bad]
    assert f"chain {bad}: missing" in report.summary()
    assert (await verify(store, good)).ok


tamper = st.one_of(
    st.tuples(st.just("edit"), st.integers(1, 6), st.sampled_from(["subject", "target", "method", "rule"]),
              # never the value the column already holds (subjects user0-2, rule r, target t, method m)
              st.text(min_size=1, max_size=10).filter(
                  lambda s: "\x00" not in s and not s.startswith("user") and s not in ("m", "r", "t"))),
    st.tuples(st.just("edit"), st.integers(1, 6), st.sampled_from(["latency_us", "request_bytes"]),
              st.integers(-(2**40), 99)),  # below every stored latency_us (1000+) and request_bytes (100+)
    st.tuples(st.just("delete"), st.integers(1, 5), st.just(""), st.just("")),
    st.tuples(st.just("swap"), st.integers(1, 5), st.just(""), st.just("")),
)  # fmt: skip


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=tamper)
async def test_any_single_tampering_is_detected_at_the_first_affected_record(
    store: Store, tmp_path: Path, change: tuple[str, int, str, Any]
) -> None:
    action, seq, column, value = change
    node = await _chain(store, tmp_path, rule="r", target="t", method="m")
    if action == "edit":
        await sql(store, f"UPDATE audit_records SET {column} = :v {ONE_NODE}", v=value, node=node, seq=seq)
        expected = {(ProblemKind.EDITED, seq)}
    elif action == "delete":
        await sql(store, f"DELETE FROM audit_records {ONE_NODE}", node=node, seq=seq)
        expected = {(ProblemKind.MISSING, seq + 1)}
    else:
        for old, new in ((seq, -1), (seq + 1, seq), (-1, seq + 1)):
            await sql(store, "UPDATE audit_records SET seq = :new WHERE node = :node AND seq = :old",
                      new=new, old=old, node=node)  # fmt: skip
        expected = {(ProblemKind.REORDERED, seq)}
    assert await _first_problem(store, node) in expected


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    subjects=st.lists(st.text(max_size=40), min_size=1, max_size=12),
    extra=st.dictionaries(st.text(max_size=5), st.integers() | st.floats() | st.text(max_size=5), max_size=3),
)
async def test_any_sequence_of_records_verifies(
    store: Store, tmp_path: Path, subjects: list[str], extra: dict[str, Any]
) -> None:
    node = f"h-{uuid.uuid4().hex[:12]}"
    settings_ = AuditSettings(spool_dir=tmp_path / node, node_id=node, flush_interval_ms=10)
    async with AuditLog(store, settings_, env={}) as log:
        for i, subject in enumerate(subjects):
            log.append(id=f"i{i}", subject=subject, method="tools/call", outcome="ok", extra=extra or None)
    report = await verify(store, node)
    assert report.ok, report.summary()
    assert report.records == len(subjects)


async def test_tail_gives_the_newest_records_oldest_first(store: Store, tmp_path: Path) -> None:
    await _chain(store, tmp_path, count=10)
    batches = [batch async for batch in tail(store, 3)]
    assert [[r.id for r in batch] for batch in batches] == [["x7", "x8", "x9"]]


async def test_tail_follow_yields_records_committed_later(store: Store, audit_log: AuditLog) -> None:
    append_many(audit_log, 2, prefix="old")
    await flushed(audit_log)
    seen: list[list[str]] = []
    with anyio.fail_after(20):
        async for batch in tail(store, 1, follow=True, poll_s=0.01):
            seen.append([r.id for r in batch])
            if len(seen) == 1:
                append_many(audit_log, 2, prefix="new")
            if sum(map(len, seen)) == 3:
                break
    assert [i for batch in seen for i in batch] == ["old1", "new0", "new1"]


async def test_exported_lines_verify_with_only_the_documented_recipe(store: Store, tmp_path: Path) -> None:
    await _chain(store, tmp_path, extra={"dlp": ["email"], "note": "ünïcödé\n\x01"})
    out = io.BytesIO()
    assert await export(store, out) == 6
    prev = "0" * 64
    for line in out.getvalue().splitlines():
        doc = json.loads(line)
        claimed = doc.pop("hash")
        assert doc["prev_hash"] == prev
        body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert hashlib.sha256(prev.encode() + body).hexdigest() == claimed
        prev = claimed


async def test_export_since_keeps_only_newer_records(store: Store, tmp_path: Path) -> None:
    await _chain(store, tmp_path, count=3)
    cut = datetime.now(UTC)
    await _chain(store, tmp_path, count=2)
    out = io.BytesIO()
    assert await export(store, out, since=cut) == 2
    assert await export(store, io.BytesIO(), since=cut.replace(tzinfo=None)) == 2  # naive means UTC

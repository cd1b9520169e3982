"""AuditLog on both backends: chaining, restarts, spool recovery, keys and node ids, failure handling."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import stat
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from portico.audit import AuditError, AuditLog, AuditSettings
from portico.audit.chain import SPOOL_FIELDS, SPOOL_VERSION
from portico.audit.model import GENESIS_HASH
from portico.audit.verify import tail, verify
from portico.store import Store
from tests.audit.support import append_many, flushed, records, sql

pytestmark = pytest.mark.anyio


async def test_appended_records_are_chained_in_order_and_verify(audit_log: AuditLog, store: Store) -> None:
    ids = append_many(audit_log, 25)
    await flushed(audit_log)
    stored = await records(store)
    assert [r.id for r in stored] == ids
    assert [r.seq for r in stored] == list(range(1, 26))
    assert stored[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(stored))
    assert all(r.node == audit_log.node for r in stored)
    report = await verify(store)
    assert report.ok, report.summary()
    assert (report.nodes, report.records) == (1, 25)


async def test_record_fields_are_stored_as_given(audit_log: AuditLog, store: Store) -> None:
    audit_log.append(
        id="e1", parent_id="p1", subject="bob", client_id="cli", authenticated_by="jwt", ip="192.0.2.1",
        session_id="s1", scope="gh", method="tools/call", server_id="gh", target="search", decision="deny",
        rule="deny-after-hours", reason="outside 9-17", outcome="denied", error_code=-32001, latency_us=1500,
        request_bytes=321, response_bytes=12, args_digest="ab" * 32, arg_keys=["b", "a"],
        protocol_version="2025-11-25", era="legacy", extra={"dlp": ["email"], "n": 1, "f": 0.5, "nul": "a\x00b"},
    )  # fmt: skip
    await flushed(audit_log)
    [rec] = await records(store)
    assert (rec.subject, rec.client_id, rec.authenticated_by, rec.ip, rec.scope) == ("bob", "cli", "jwt",
                                                                                     "192.0.2.1", "gh")  # fmt: skip
    assert (rec.decision, rec.rule, rec.reason, rec.outcome, rec.error_code) == (
        "deny", "deny-after-hours", "outside 9-17", "denied", -32001)  # fmt: skip
    assert (rec.latency_us, rec.request_bytes, rec.response_bytes) == (1500, 321, 12)
    assert rec.arg_keys == ("a", "b")
    # Floats become strings and NUL becomes U+FFFD, so every backend stores and hashes the same value.
    assert rec.extra == {"dlp": ["email"], "n": 1, "f": "0.5", "nul": "a\ufffdb"}
    assert rec.ts.tzinfo is not None
    assert (await verify(store)).ok


async def test_the_chain_continues_across_restarts(store: Store, audit_settings: AuditSettings) -> None:
    for round_ in range(3):
        async with AuditLog(store, audit_settings, env={}) as log:
            append_many(log, 5, prefix=f"r{round_}-")
    stored = await records(store)
    assert [r.seq for r in stored] == list(range(1, 16))
    assert len({r.node for r in stored}) == 1
    assert (await verify(store)).ok


async def test_stop_commits_everything_and_leaves_no_spool_segments(
    store: Store, audit_settings: AuditSettings
) -> None:
    settings = audit_settings.model_copy(update={"flush_interval_ms": 60_000})  # only stop() flushes
    async with AuditLog(store, settings, env={}) as log:
        append_many(log, 7)
        assert log.pending == 7
    assert len(await records(store)) == 7
    assert list(settings.spool_dir.glob("*.seg")) == []


async def test_a_full_batch_is_flushed_without_waiting_for_the_interval(
    store: Store, audit_settings: AuditSettings
) -> None:
    settings = audit_settings.model_copy(update={"flush_interval_ms": 60_000, "batch_max": 10})
    async with AuditLog(store, settings, env={}) as log:
        append_many(log, 10)
        seen = 0
        with anyio.fail_after(10):  # far less than the interval: the flusher was woken by the full batch
            # the newest 10 first: the flush may already have landed before tail's first query
            async for batch in tail(store, 10, follow=True, poll_s=0.01):
                seen += len(batch)
                if seen == 10:
                    break
        assert log.pending == 0


def _spool_line(node: str, seq: int, record_id: str) -> bytes:
    values: dict[str, Any] = dict.fromkeys(SPOOL_FIELDS)
    values.update(node=node, seq=seq, ts_us=1_700_000_000_000_000 + seq, id=record_id, subject="carol",
                  authenticated_by="none", method="tools/call", outcome="ok", latency_us=5, request_bytes=1,
                  response_bytes=2, arg_keys=[])  # fmt: skip
    return orjson.dumps([SPOOL_VERSION, *values.values()]) + b"\n"


async def test_records_left_in_the_spool_are_committed_on_start(store: Store, audit_settings: AuditSettings) -> None:
    settings = audit_settings.model_copy(update={"node_id": "crashed-node"})
    settings.spool_dir.mkdir(parents=True)
    lines = b"".join(_spool_line("crashed-node", seq, f"left{seq}") for seq in (1, 2, 3))
    (settings.spool_dir / "0000000007.seg").write_bytes(lines)
    async with AuditLog(store, settings, env={}) as log:
        assert [r.id for r in await records(store)] == ["left1", "left2", "left3"]  # before any new append
        log.append(id="new", subject="s", method="ping", outcome="ok")
    stored = await records(store)
    assert [(r.id, r.seq) for r in stored] == [("left1", 1), ("left2", 2), ("left3", 3), ("new", 4)]
    assert (await verify(store)).ok


async def test_recovering_the_same_spool_twice_does_not_duplicate_records(
    store: Store, audit_settings: AuditSettings
) -> None:
    settings = audit_settings.model_copy(update={"node_id": "n1"})
    settings.spool_dir.mkdir(parents=True)
    segment = b"".join(_spool_line("n1", seq, f"r{seq}") for seq in (1, 2))
    (settings.spool_dir / "0000000001.seg").write_bytes(segment)
    async with AuditLog(store, settings, env={}):
        pass
    # As if the process died after committing but before deleting the segment:
    (settings.spool_dir / "0000000001.seg").write_bytes(segment + _spool_line("n1", 3, "r3"))
    async with AuditLog(store, settings, env={}):
        pass
    assert [r.id for r in await records(store)] == ["r1", "r2", "r3"]
    assert (await verify(store)).ok


async def test_a_torn_last_spool_line_is_skipped_and_logged(
    store: Store, audit_settings: AuditSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = audit_settings.model_copy(update={"node_id": "torn"})
    settings.spool_dir.mkdir(parents=True)
    torn = _spool_line("torn", 3, "never-acked")[:-20]  # killed mid-write: no newline
    (settings.spool_dir / "0000000001.seg").write_bytes(
        _spool_line("torn", 1, "a") + _spool_line("torn", 2, "b") + torn
    )
    with caplog.at_level(logging.WARNING, logger="portico.audit"):
        async with AuditLog(store, settings, env={}) as log:
            log.append(id="c", subject="s", method="ping", outcome="ok")
    assert [(r.id, r.seq) for r in await records(store)] == [("a", 1), ("b", 2), ("c", 3)]
    assert any("torn" in message for message in caplog.messages)
    assert (await verify(store)).ok


async def test_an_unreadable_spool_line_is_skipped_and_logged(
    store: Store, audit_settings: AuditSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = audit_settings.model_copy(update={"node_id": "junk"})
    settings.spool_dir.mkdir(parents=True)
    far_future = json.loads(_spool_line("junk", 2, "z"))
    far_future[3] = 10**19  # ts_us past year 9999
    junk = b'{"not": "a record"}\n[1, "junk"]\n\xff\xfe garbage\n' + _spool_line("bad node!", 1, "y")
    junk += json.dumps(far_future).encode() + b"\n"
    (settings.spool_dir / "0000000001.seg").write_bytes(
        _spool_line("junk", 1, "a") + junk + _spool_line("junk", 2, "b")
    )
    with caplog.at_level(logging.WARNING, logger="portico.audit"):
        async with AuditLog(store, settings, env={}):
            pass
    assert [r.id for r in await records(store)] == ["a", "b"]
    assert sum("unreadable" in m for m in caplog.messages) == 5


async def test_records_appended_while_the_database_fails_are_committed_once_it_recovers(
    audit_log: AuditLog, store: Store
) -> None:
    await sql(store, "ALTER TABLE audit_records RENAME TO audit_records_away")
    ids = append_many(audit_log, 5)
    with anyio.move_on_after(0.3):
        await audit_log.flush()  # cannot finish: every commit fails
    assert audit_log.pending == 5
    await sql(store, "ALTER TABLE audit_records_away RENAME TO audit_records")
    await flushed(audit_log)
    assert [r.id for r in await records(store)] == ids
    assert (await verify(store)).ok


async def test_a_second_log_on_the_same_spool_is_refused(audit_log: AuditLog, store: Store) -> None:
    with pytest.raises(AuditError):
        await AuditLog(store, audit_log.settings, env={}).start()


async def test_two_writers_sharing_a_node_id_cannot_fork_the_chain(
    store: Store, audit_settings: AuditSettings, tmp_path: Path
) -> None:
    first = audit_settings.model_copy(update={"node_id": "shared"})
    second = first.model_copy(update={"spool_dir": tmp_path / "other-spool"})
    async with AuditLog(store, first, env={}) as a, AuditLog(store, second, env={}) as b:
        append_many(a, 3, prefix="a")
        await flushed(a)
        append_many(b, 2, prefix="b")
        with anyio.move_on_after(0.3):
            await b.flush()
        assert b.pending == 2  # refused, kept in b's spool
    assert [r.id for r in await records(store)] == ["a0", "a1", "a2"]
    assert (await verify(store)).ok
    assert len(list(second.spool_dir.glob("*.seg"))) >= 1


async def test_the_generated_key_and_node_id_are_private_and_stable(
    store: Store, audit_settings: AuditSettings
) -> None:
    async with AuditLog(store, audit_settings, env={}) as log:
        node, digest = log.node, log.digest_args({"q": "x"})
    assert stat.S_IMODE(audit_settings.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(audit_settings.spool_dir.stat().st_mode) == 0o700
    async with AuditLog(store, audit_settings, env={}) as log:
        assert (log.node, log.digest_args({"q": "x"})) == (node, digest)


async def test_the_key_from_the_environment_is_used_when_set(store: Store, audit_settings: AuditSettings) -> None:
    async with AuditLog(store, audit_settings, env={"PORTICO_AUDIT_KEY": "k3y"}) as log:
        expected = hmac.new(b"k3y", b'{"q":"x"}', hashlib.sha256).hexdigest()
        assert log.digest_args({"q": "x"}) == expected
    assert not audit_settings.key_path.exists()


async def test_fsync_mode_records_and_verifies(store: Store, audit_settings: AuditSettings) -> None:
    async with AuditLog(store, audit_settings.model_copy(update={"fsync": True}), env={}) as log:
        append_many(log, 5)
    assert len(await records(store)) == 5
    assert (await verify(store)).ok


async def test_spool_segments_rotate_and_are_deleted_once_committed(
    store: Store, audit_settings: AuditSettings
) -> None:
    settings = audit_settings.model_copy(update={"segment_max_bytes": 2000, "batch_max": 7})
    async with AuditLog(store, settings, env={}) as log:
        for round_ in range(5):
            append_many(log, 20, prefix=f"r{round_}-")
            await flushed(log)
            await flushed(log)  # a second round lets the flusher delete the segment it just rotated away
            assert len(list(settings.spool_dir.glob("*.seg"))) <= 2
    assert len(await records(store)) == 100
    assert (await verify(store)).ok


async def test_append_outside_start_and_stop_raises(store: Store, audit_settings: AuditSettings) -> None:
    log = AuditLog(store, audit_settings, env={})
    with pytest.raises(AuditError):
        log.append(id="x", subject="s", method="ping", outcome="ok")
    await log.start()
    await log.stop()
    with pytest.raises(AuditError):
        log.append(id="x", subject="s", method="ping", outcome="ok")


async def test_odd_values_are_still_recorded(audit_log: AuditLog, store: Store) -> None:
    audit_log.append(id="odd", subject="\ud800lone", method="tools/call", outcome="ok", error_code=2**70,
                     extra={"big": 2**80, "obj": object, "t": (1, 2)})  # fmt: skip
    await flushed(audit_log)
    [rec] = await records(store)
    assert rec.subject == "?lone"
    assert rec.error_code is None  # beyond 64 bits: dropped rather than wedge the flusher
    assert rec.extra == {"big": str(2**80), "obj": repr(object), "t": [1, 2]}
    assert (await verify(store)).ok


def test_every_audit_setting_has_a_default_and_a_description() -> None:
    for name, field in AuditSettings.model_fields.items():
        assert not field.is_required(), name
        assert field.description, name


def test_node_ids_must_be_short_and_plain() -> None:
    with pytest.raises(ValueError, match="letters"):
        AuditSettings(node_id="has space")


async def test_an_empty_key_file_is_refused_rather_than_used(store: Store, audit_settings: AuditSettings) -> None:
    audit_settings.key_path.parent.mkdir(parents=True, exist_ok=True)
    audit_settings.key_path.write_text("\n")
    with pytest.raises(AuditError):
        await AuditLog(store, audit_settings, env={}).start()
    audit_settings.key_path.write_text("ab" * 32)
    async with AuditLog(store, audit_settings, env={}) as log:  # the failed start released the spool
        assert log.digest_args({}) == hmac.new(b"\xab" * 32, b"{}", hashlib.sha256).hexdigest()

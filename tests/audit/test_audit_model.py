"""The pure core: canonical JSON, the chain hash, argument digests, value cleaning."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portico.audit.model import (
    GENESIS_HASH,
    AuditRecord,
    canonical_json,
    chain_hash,
    clean_json,
    digest_args,
    format_ts,
    ts_from_us,
)

BASE = AuditRecord(
    id="e1", parent_id=None, ts=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), node="n1", seq=1,
    prev_hash=GENESIS_HASH, hash="", subject="alice", client_id=None, authenticated_by="none", ip=None,
    session_id=None, scope=None, method="tools/call", server_id="gh", target="search", decision="allow",
    rule="r", reason="ok", outcome="ok", error_code=None, latency_us=10, request_bytes=1, response_bytes=2,
    args_digest=None, arg_keys=("q",), protocol_version="2025-11-25", era="legacy", extra=None,
)  # fmt: skip

# Text as clients may send it (after the writer's cleaning: no NUL, valid UTF-8).
text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
records = st.builds(
    lambda subject, target, reason, extra, keys, seq, us: dataclasses.replace(
        BASE, subject=subject, target=target, reason=reason, extra=extra, arg_keys=tuple(sorted(keys)), seq=seq,
        ts=ts_from_us(us),
    ),
    text, st.none() | text, st.none() | text, st.none() | st.dictionaries(text, json_values, max_size=5),
    st.lists(text, max_size=5), st.integers(1, 2**62), st.integers(0, 2**55),
)  # fmt: skip


@given(records)
def test_canonical_json_is_exactly_the_documented_stdlib_recipe(record: AuditRecord) -> None:
    doc = record.document()
    documented = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert canonical_json(doc) == documented
    expected = hashlib.sha256(record.prev_hash.encode("ascii") + documented).hexdigest()
    assert record.computed_hash() == expected


def test_the_document_is_every_field_but_the_hash() -> None:
    doc = BASE.document()
    assert set(doc) == {f.name for f in dataclasses.fields(AuditRecord)} - {"hash"}
    assert doc["ts"] == "2026-01-02T03:04:05.000006Z"
    assert doc["arg_keys"] == ["q"]


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(AuditRecord) if f.name != "hash"])
def test_changing_any_field_changes_the_hash(field: str) -> None:
    changed: dict[str, Any] = {
        "ts": datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC),
        "seq": 2,
        "latency_us": 11,
        "request_bytes": 9,
        "response_bytes": 9,
        "error_code": -32001,
        "arg_keys": ("q", "z"),
        "extra": {"k": 1},
        "prev_hash": "f" * 64,
    }
    value = changed.get(field, "something else")
    assert dataclasses.replace(BASE, **{field: value}).computed_hash() != BASE.computed_hash()


def test_the_chain_hash_depends_on_the_previous_hash() -> None:
    doc = BASE.document()
    assert chain_hash(GENESIS_HASH, doc) != chain_hash("1" * 64, doc)


def test_argument_digests_are_keyed_and_independent_of_key_order() -> None:
    a = digest_args(b"k1", {"q": "secret", "n": 1})
    assert a == digest_args(b"k1", {"n": 1, "q": "secret"})
    assert a != digest_args(b"k2", {"q": "secret", "n": 1})
    assert a != digest_args(b"k1", {"q": "secreT", "n": 1})
    assert a == hmac.new(b"k1", b'{"n":1,"q":"secret"}', hashlib.sha256).hexdigest()


def test_argument_digests_cope_with_values_json_rarely_sees() -> None:
    assert len(digest_args(b"k", {"big": 2**80, "lone": "\ud800"})) == 64


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a\x00b", "a\ufffdb"),
        ("\ud800x", "?x"),
        (0.25, "0.25"),
        (2**64, str(2**64)),
        (-(2**63), -(2**63)),
        (True, True),
        ((1, "x"), [1, "x"]),
        ({1: {"f": 1.5}}, {"1": {"f": "1.5"}}),
        (None, None),
    ],
)
def test_clean_json_makes_values_storable_on_every_backend(raw: Any, clean: Any) -> None:
    assert clean_json(raw) == clean


def test_timestamps_are_utc_with_microseconds() -> None:
    assert format_ts(ts_from_us(1)) == "1970-01-01T00:00:00.000001Z"
    assert ts_from_us(1_700_000_000_123_456).microsecond == 123_456

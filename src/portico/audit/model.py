"""The audit record and its hash chain, defined precisely enough for an auditor to re-implement `verify`.

Each writer process ("node") keeps one chain. Record `n` of a node carries `seq = n` (1, 2, 3, … without gaps),
`prev_hash` = the `hash` of record `n - 1` (for `seq = 1`: `GENESIS_HASH`, 64 ASCII zeros), and

    hash = lowercase_hex( SHA-256( prev_hash_ascii || canonical_json(document) ) )

where `prev_hash_ascii` is the 64 lowercase hex characters of `prev_hash` as ASCII bytes, and `document` is a
JSON object holding every field of `AuditRecord` except `hash` itself (so `node`, `seq` and `prev_hash` are
covered too), under the field names of `AuditRecord`, with these value forms:

- `ts`: a string `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, always six fractional digits);
- `arg_keys`: an array of strings; `extra`: an object or null; every other absent value: null;
- integers (`seq`, `error_code`, `latency_us`, `request_bytes`, `response_bytes`) in plain decimal.
  The document never holds a float: the writer turns any float inside `extra` into its string form first.

`canonical_json` is RFC 8259 JSON encoded as UTF-8 with no insignificant whitespace, object keys sorted by
code point at every level, strings escaped minimally (`\\"`, `\\\\`, and U+0000..U+001F as `\\b \\f \\n \\r \\t`
or `\\u00xx` with lowercase hex; everything else, non-ASCII included, written as is). Python's
``json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()`` produces exactly
these bytes (the test suite checks this); Portico computes them faster with orjson.

Argument values are never stored: `args_digest` is HMAC-SHA256, keyed with the node's audit key, of the
arguments' JSON (orjson, sorted keys), so equal arguments can be matched by whoever holds the key and by
nobody else. `arg_keys` keeps the sorted top-level argument names.

This module is pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64 = 2**63


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited exchange, as stored.

    `ts` is when the exchange finished (its record was appended), UTC, to the microsecond; `latency_us` is how
    long it took (an integer, so the hashed document holds no float). `decision` is "allow", "deny" or None (no
    enforcement stage decided); `outcome` is a `portico.types.Outcome` value; `scope` is None for the portal or
    the server id of a per-server URL; `node`/`seq` place the record in its writer's chain.
    """

    id: str
    parent_id: str | None
    ts: datetime
    node: str
    seq: int
    prev_hash: str
    hash: str
    subject: str
    client_id: str | None
    authenticated_by: str
    ip: str | None
    session_id: str | None
    scope: str | None
    method: str
    server_id: str | None
    target: str | None
    decision: str | None
    rule: str | None
    reason: str | None
    outcome: str
    error_code: int | None
    latency_us: int
    request_bytes: int
    response_bytes: int
    args_digest: str | None
    arg_keys: tuple[str, ...]
    protocol_version: str | None
    era: str | None
    extra: Mapping[str, Any] | None

    @property
    def latency_ms(self) -> float:
        return self.latency_us / 1000

    def document(self) -> dict[str, Any]:
        """The JSON object that is hashed: every field but `hash`, in the value forms of the module docstring."""
        doc = {name: getattr(self, name) for name in _DOCUMENT_FIELDS}
        doc["ts"] = format_ts(self.ts)
        doc["arg_keys"] = list(self.arg_keys)
        doc["extra"] = dict(self.extra) if self.extra is not None else None
        return doc

    def to_json(self) -> dict[str, Any]:
        """The document plus `hash`: one line of `portico audit export`."""
        doc = self.document()
        doc["hash"] = self.hash
        return doc

    def computed_hash(self) -> str:
        """The hash this record should carry given its content and `prev_hash`."""
        return chain_hash(self.prev_hash, self.document())


_DOCUMENT_FIELDS = tuple(f.name for f in fields(AuditRecord) if f.name != "hash")


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a JSON document (see the module docstring).

    Raises:
        TypeError: the document holds something JSON cannot express (orjson.JSONEncodeError is a TypeError).
    """
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: str, document: Mapping[str, Any]) -> str:
    """`sha256(prev_hash || canonical_json(document))` as lowercase hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(document)).hexdigest()


def digest_args(key: bytes, arguments: Any) -> str:
    """Keyed digest of call arguments: HMAC-SHA256(key, JSON with sorted keys), lowercase hex."""
    try:
        body = orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # ints beyond 64 bits, lone surrogates: the stdlib encoder copes with both
        body = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=repr).encode("ascii")
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def format_ts(ts: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ts_from_us(micros: int) -> datetime:
    """A UTC datetime from microseconds since the epoch (exact, unlike `datetime.fromtimestamp`)."""
    return EPOCH + timedelta(microseconds=micros)


def clean_text(value: str) -> str:
    """Make a string storable everywhere: PostgreSQL rejects NUL, and lone surrogates are not UTF-8."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def clean_json(value: Any) -> Any:
    """`value` made safe for the hashed document and every JSON column: text cleaned, floats and oversized
    integers turned into strings, non-string keys stringified, anything else into its repr."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping):
        return {clean_text(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return clean_text(repr(value))

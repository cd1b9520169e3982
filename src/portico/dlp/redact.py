"""Mask findings in a JSON value, and fingerprint matched values for the audit log.

`redact` returns a new value of the same shape; only the characters of each finding change. Cards keep their
first and last four digits and their separators (`4111 **** **** 1111`); everything else becomes
`[REDACTED:<detector>]`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from portico.dlp.model import Finding
from portico.dlp.scan import child_path


def fingerprint(value: str, key: bytes) -> str:
    """HMAC-SHA256 of `value` under `key`, hex: lets the audit log correlate a value without holding it."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def matched_text(text: str, finding: Finding) -> str:
    """The matched characters of `text` (the string at `finding.path`), e.g. to pass to `fingerprint`."""
    return text[finding.start : finding.end]


def mask(detector: str, original: str, encoding: str | None = None) -> str:
    """The replacement for one match."""
    if detector == "card" and encoding is None:
        digit_positions = [i for i, c in enumerate(original) if c.isdigit()]
        hidden = set(digit_positions[4:-4])
        return "".join("*" if i in hidden else c for i, c in enumerate(original))
    return f"[REDACTED:{detector}]"


def redact_text(text: str, findings: Iterable[Finding]) -> str:
    """Apply non-overlapping findings to one string, right to left."""
    out = text
    last_start = len(text) + 1
    for f in sorted(findings, key=lambda f: f.start, reverse=True):
        if f.end > last_start:
            continue  # overlapping: already masked
        out = out[: f.start] + mask(f.detector, text[f.start : f.end], f.encoding) + out[f.end :]
        last_start = f.start
    return out


def redact(value: Any, findings: Iterable[Finding], path: str = "") -> Any:
    """A copy of `value` with every finding masked; structure, types and unmatched text unchanged."""
    by_place: dict[tuple[str, bool], list[Finding]] = defaultdict(list)
    for f in findings:
        by_place[(f.path, f.in_key)].append(f)
    if not by_place:
        return value
    return _apply(value, path, by_place)


def _apply(value: Any, path: str, by_place: dict[tuple[str, bool], list[Finding]]) -> Any:
    if isinstance(value, str):
        hits = by_place.get((path, False))
        return redact_text(value, hits) if hits else value
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            sub = child_path(path, k if isinstance(k, str) else str(k))
            key_hits = by_place.get((sub, True))
            new_key = redact_text(k, key_hits) if key_hits and isinstance(k, str) else k
            out[new_key] = _apply(v, sub, by_place)
        return out
    if isinstance(value, list):
        return [_apply(v, child_path(path, i), by_place) for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return tuple(_apply(v, child_path(path, i), by_place) for i, v in enumerate(value))
    return value

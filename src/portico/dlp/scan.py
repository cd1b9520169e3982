"""Scan a JSON value: every string (values, and dict keys) through every detector, plus decoded base64 blobs
and %-encoded runs; then `redact` masks exactly the findings, keeping the JSON structure.

Cost control: per string, a textual detector runs only if one of its literal `hints` occurs (C-speed `in`
tests, grouped by each hint's rarest character so that absent characters rule out whole groups at once).
Numeric detectors run only on a digest of the string: the neighbourhoods of numeric candidates (9+ digits,
dotted quads, "(ddd)"); their hints (context keywords) are checked on that digest. Numeric candidates and
base64 runs (24+ characters of the alphabet) are found in ASCII text by masking it with `bytes.translate` and
searching the mask with `bytes.find`, not by a regex attempt at every digit or letter. Strings that recur
within one scan (the keys of a list of records) are scanned once.
"""

from __future__ import annotations

import base64
import binascii
import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from portico.dlp.detectors import default_detectors
from portico.dlp.model import Detector, FieldDetector, Finding

# Numeric detectors only look at windows around candidates: nine or more digits with single separators (cards,
# IBANs, SSNs, national IDs, phone numbers), dotted quads (IPv4) and "(415)" area codes. Dates, times, amounts
# and short ids are not candidates, so digit-heavy text mostly skips the numeric detectors.
# (One loose regex plus a digit count is about three times faster than one precise alternation.)
_NUMERIC_RUN = re.compile(r"[0-9][0-9 .-]{5,}[0-9]")
_AREA_CODE = re.compile(r"\([0-9]{3}\)")
_MARGIN_BEFORE = 48
_MARGIN_AFTER = 16
_SEPARATOR = "\n\x00\n"
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")
_HEX = re.compile(r"[0-9a-fA-F-]+")  # digests, UUIDs
_PCT_RUN = re.compile(r"[^\s\"'<>%]*(?:%[0-9A-Fa-f]{2}[^\s\"'<>%]*)+")
_PCT_UNIT = re.compile(r"(?:%[0-9A-Fa-f]{2})+|[^%]|%")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_DECODE_DEPTH = 2
# Memo keys: (value, key of the field holding it or None) for values, (key,) for dict keys themselves.
_Memo = dict[tuple[str, str | None] | tuple[str], list[Finding]]


def child_path(parent: str, key: str | int) -> str:
    """`parent.key`, `parent[3]`, or `parent["odd key"]` for keys that are not identifiers."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _PLAIN_KEY.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{parent}["{escaped}"]'


def _printable(text: str) -> bool:
    if not text:
        return False
    good = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    return good >= 0.95 * len(text)


_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
# Maps each byte to b"a" (base64 alphabet) or b" " (anything else), so runs can be found with `bytes.find`.
_B64_MASK = bytes(ord("a") if chr(i) in _B64_ALPHABET else ord(" ") for i in range(256))
_B64_SEED = b"a" * 24


def _b64_runs(text: str) -> Iterator[tuple[int, int, str]]:
    """Base64-alphabet runs of 24+ characters (plus up to two `=`), as `_B64_RUN` would find them.

    ASCII text (nearly all of it) is masked with one `bytes.translate` and searched for 24 alphabet bytes in a
    row with `bytes.find`: both run at C speed, where a regex pass over prose tries a match at every letter.
    """
    if len(text) < 24:
        return
    if not text.isascii():
        yield from _b64_runs_in_words(text)
        return
    mask = text.encode("ascii").translate(_B64_MASK)
    size = len(text)
    start = mask.find(_B64_SEED)
    while start >= 0:
        end = mask.find(b" ", start + 24)
        if end < 0:
            end = size
        if end < size and text[end] == "=":
            end += 2 if text.startswith("==", end) else 1
        yield start, end, text[start:end]
        start = mask.find(_B64_SEED, end)


def _b64_runs_in_words(text: str) -> Iterator[tuple[int, int, str]]:
    """`_b64_runs` for non-ASCII text. Splitting on whitespace and measuring words runs in C and is about twice
    as fast as a regex pass over prose, so the regex only sees the few long words.
    """
    words = text.split()
    if max(map(len, words), default=0) < 24:
        return
    cursor = 0
    for word in words:
        if len(word) >= 24:
            at = text.find(word, cursor)
            cursor = at + len(word)
            for m in _B64_RUN.finditer(word):
                yield at + m.start(), at + m.end(), m.group()


def _b64_text(run: str) -> str | None:
    """The UTF-8 text a plausible base64 blob decodes to, or None."""
    if _HEX.fullmatch(run):
        return None  # digests and UUIDs: hex decoded as base64 is noise
    body = run.rstrip("=")
    try:
        if "-" in body or "_" in body:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        else:
            raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if _printable(text) else None


class Scanner:
    """Runs a fixed set of detectors over strings and JSON values. Build once, reuse (it is stateless)."""

    def __init__(self, detectors: Sequence[Detector] | None = None, *, decode: bool = True) -> None:
        self.detectors: tuple[Detector, ...] = tuple(default_detectors() if detectors is None else detectors)
        self.decode = decode
        self._field_detectors = tuple(d for d in self.detectors if isinstance(d, FieldDetector))
        self._textual = tuple(d for d in self.detectors if not d.needs_digits)
        self._sentinels = _sentinel_gates(self._textual)
        # An empty hint occurs in every text, so its detector is ungated like one without hints.
        self._unhinted = frozenset(i for i, d in enumerate(self._textual) if not (d.hints and all(d.hints)))
        # Numeric detectors' hints (context keywords) are checked on the digest around candidates, see below.
        self._numeric = [d for d in self.detectors if d.needs_digits]

    def find(self, text: str, *, key: str | None = None, depth: int = 0) -> list[Finding]:
        """Validated, non-overlapping findings in one string (path empty). `key`: the field holding it."""
        found: list[Finding] = []
        hinted = [i for c, gates in self._sentinels if c in text for hint, i in gates if hint in text]
        if hinted or self._unhinted:
            for i in sorted(self._unhinted.union(hinted)):  # detector order breaks ties in `_resolve`
                found.extend(self._textual[i].find(text))
        if self._numeric and len(text) >= 5:  # shorter than "(415)": no numeric candidate
            found.extend(_find_numeric(self._numeric, text))
        if key is not None:
            for fd in self._field_detectors:
                found.extend(fd.find_in_field(key, text))
        if self.decode and depth < MAX_DECODE_DEPTH and (len(text) >= 24 or "%" in text):
            found.extend(self._decoded(text, depth))
        return _resolve(found)

    def _decoded(self, text: str, depth: int) -> Iterator[Finding]:
        for start, end, run in _b64_runs(text):
            decoded = _b64_text(run)
            if decoded is not None:
                for inner in self.find(decoded, depth=depth + 1):
                    yield Finding(inner.detector, start, end, encoding="base64")
        if "%" in text:
            for m in _PCT_RUN.finditer(text):
                yield from self._url_decoded(m.group(), m.start(), depth)

    def _url_decoded(self, run: str, offset: int, depth: int) -> Iterator[Finding]:
        # Each decoded character maps back to the span of its escape sequence, so only the match is masked.
        starts: list[int] = []
        ends: list[int] = []
        chunks: list[str] = []
        for m in _PCT_UNIT.finditer(run):
            piece = unquote(m.group())
            starts.extend([offset + m.start()] * len(piece))
            ends.extend([offset + m.end()] * len(piece))
            chunks.append(piece)
        decoded = "".join(chunks)
        if decoded == run:
            return
        for inner in self.find(decoded, depth=depth + 1):
            yield Finding(inner.detector, starts[inner.start], ends[inner.end - 1], encoding="url")

    def scan(self, value: Any, path: str = "") -> list[Finding]:
        """Findings in every string of a JSON value (dict keys included), each with its JSON path."""
        out: list[Finding] = []
        self._walk(value, path, None, out, {})
        return out

    def _walk(self, value: Any, path: str, key: str | None, out: list[Finding], memo: _Memo) -> None:
        # `memo` holds the findings of strings already seen in this scan: the same keys recur in every element
        # of a list of records, and `find` is pure.
        if isinstance(value, str):
            found = memo.get((value, key))
            if found is None:
                found = memo[value, key] = self.find(value, key=key)
            if found:
                out.extend(replace(f, path=path) for f in found)
        elif isinstance(value, dict):
            for k, v in value.items():
                sub = child_path(path, k) if isinstance(k, str) else child_path(path, str(k))
                if isinstance(k, str):
                    in_key = memo.get((k,))
                    if in_key is None:
                        in_key = memo[(k,)] = self.find(k)
                    if in_key:
                        out.extend(replace(f, path=sub, in_key=True) for f in in_key)
                self._walk(v, sub, k if isinstance(k, str) else None, out, memo)
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                self._walk(v, child_path(path, i), None, out, memo)


# Characters from most to least common in tool traffic (prose, ids, timestamps, paths); unlisted ones rank rarest.
_COMMONNESS = ' etaoinsrhldcu0123456789-.:/,"mfpgwybvkTSAEIRONLCDPMHBGFUWYVKxjqzXJQZ'


def _sentinel_gates(detectors: Sequence[Detector]) -> tuple[tuple[str, tuple[tuple[str, int], ...]], ...]:
    """Hints grouped by their rarest character: a hint can only occur where that character does, and a
    one-character `in` test stops at the first occurrence or runs at memchr speed, so most texts pay one cheap
    test per group instead of a substring search per hint.
    """
    groups: dict[str, list[tuple[str, int]]] = {}
    for i, d in enumerate(detectors):
        for hint in filter(None, d.hints):
            rarest = max(hint, key=lambda c: _COMMONNESS.find(c) if c in _COMMONNESS else len(_COMMONNESS))
            groups.setdefault(rarest, []).append((hint, i))
    return tuple((c, tuple(gates)) for c, gates in groups.items())


def _gated(detectors: list[Detector], text: str) -> list[Detector]:
    return [d for d in detectors if not d.hints or any(map(text.__contains__, d.hints))]


# Maps each byte to b"c" (a character `_NUMERIC_RUN` can span: digit, space, dot, dash) or b"x" (anything else).
_NUMERIC_MASK = bytes(ord("c") if chr(i) in "0123456789 .-" else ord("x") for i in range(256))
_NUMERIC_SEED = b"c" * 7


def _numeric_candidates(text: str) -> list[tuple[int, int]]:
    """Spans of runs with at least nine digits or exactly three dots, and of "(ddd)" area codes.

    A `_NUMERIC_RUN` match is a maximal stretch of digits, spaces, dots and dashes trimmed to its first and last
    digit, if 7+ characters long. In ASCII text such stretches are found with one `bytes.translate` and
    `bytes.find`, which spares the regex engine an attempt at every digit of hex ids and UUIDs.
    """
    runs = _numeric_runs(text) if text.isascii() else _numeric_runs_by_regex(text)
    if "(" in text:
        runs.extend(m.span() for m in _AREA_CODE.finditer(text))
        runs.sort()
    return runs


def _is_candidate(run: str) -> bool:
    dots = run.count(".")
    # Most runs are short (dates, 8-digit ids): the length test spares them the digit count.
    return dots == 3 or (len(run) >= 9 and len(run) - dots - run.count(" ") - run.count("-") >= 9)


def _numeric_runs(text: str) -> list[tuple[int, int]]:
    mask = text.encode("ascii").translate(_NUMERIC_MASK)
    runs = []
    size = len(text)
    start = mask.find(_NUMERIC_SEED)
    while start >= 0:
        end = mask.find(b"x", start + 7)
        if end < 0:
            end = size
        stretch = text[start:end]
        run = stretch.strip(" .-")
        if len(run) >= 7 and _is_candidate(run):
            at = start + len(stretch) - len(stretch.lstrip(" .-"))
            runs.append((at, at + len(run)))
        start = mask.find(_NUMERIC_SEED, end)
    return runs


def _numeric_runs_by_regex(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _NUMERIC_RUN.finditer(text) if _is_candidate(m.group())]


def _find_numeric(detectors: list[Detector], text: str) -> list[Finding]:
    """Run the numeric detectors once over a digest of `text`: its numeric runs with some margin, joined by a
    separator no pattern crosses. Prose without such runs costs one regex search; long texts are not rescanned
    by every detector, only their numeric neighbourhoods.
    """
    runs = _numeric_candidates(text)
    if not runs:
        return []
    if len(text) <= 256 or len(runs) * (_MARGIN_BEFORE + _MARGIN_AFTER + 16) > len(text) // 2:
        return [f for d in _gated(detectors, text) for f in d.find(text)]  # short or dense: no digest
    pieces: list[str] = []
    starts: list[int] = []  # digest offset where each piece starts
    origins: list[int] = []  # text offset of each piece (-1: separator)
    hi_prev = -1
    pos = 0
    for run_start, run_end in runs:
        lo = max(0, run_start - _MARGIN_BEFORE)
        space = text.rfind(" ", 0, lo)  # start a piece at a word boundary so no boundary check is fooled
        lo = 0 if space < 0 else space
        hi = min(len(text), run_end + _MARGIN_AFTER)
        if hi <= hi_prev:
            continue  # inside the previous piece
        if pieces and lo <= hi_prev:
            lo = hi_prev
        elif pieces:
            pieces.append(_SEPARATOR)
            starts.append(pos)
            origins.append(-1)
            pos += len(_SEPARATOR)
        pieces.append(text[lo:hi])
        starts.append(pos)
        origins.append(lo)
        pos += hi - lo
        hi_prev = hi
    if not pieces:
        return []
    digest = "".join(pieces)
    if len(digest) >= len(text):
        return [f for d in _gated(detectors, text) for f in d.find(text)]
    out: list[Finding] = []
    for d in _gated(detectors, digest):
        for f in d.find(digest):
            i = bisect_right(starts, f.start) - 1
            j = bisect_right(starts, f.end - 1) - 1
            if origins[i] < 0 or origins[j] < 0:
                continue
            start = origins[i] + f.start - starts[i]
            end = origins[j] + f.end - starts[j]
            out.append(replace(f, start=start, end=end))
    return out


def _resolve(found: list[Finding]) -> list[Finding]:
    """Drop overlaps: earliest start wins, then the longest span, then detector order (stable sort)."""
    if len(found) < 2:
        return found
    ordered = sorted(found, key=lambda f: (f.start, -(f.end - f.start)))
    kept: list[Finding] = []
    for f in ordered:
        if kept and f.start < kept[-1].end:
            continue
        kept.append(f)
    return kept


_DEFAULT: Scanner | None = None


def scan(value: Any, path: str = "") -> list[Finding]:
    """`Scanner().scan(value)` with the default detectors (the scanner is built once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Scanner()
    return _DEFAULT.scan(value, path)

"""Scan a JSON value: every string (values, and dict keys) through every detector, plus decoded base64 blobs
and %-encoded runs; then `redact` masks exactly the findings, keeping the JSON structure.

Cost control: one prefilter pass per string decides which detectors can possibly match. Every detector's gate
is an RE2 pattern (its own `prefilter`, or else its literal `hints`, or else, for numeric detectors, a loose
"nine digits or a dotted quad" pattern), and all gates, plus "a base64 run that is not hex" and "a %XX escape",
form one RE2 `Set` (`detectors.linear.PatternSet`): a single DFA pass over the string, at C speed, names the
gates that occur. Most strings match none and cost that one pass; a detector runs (over the whole string)
only where its gate occurs, so the gates are written as supersets of what the detectors accept and a missed
gate would be a missed finding (tests/dlp/test_perf_prefilter.py holds each gate to that). Strings that recur
within one scan (the keys of a list of records) are scanned once, and JSON paths are only spelled out for
strings with findings.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from portico.dlp.detectors import default_detectors
from portico.dlp.detectors.linear import LinearPattern, LinearSyntaxError, PatternSet, re2_escape
from portico.dlp.model import Detector, FieldDetector, Finding

_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")
_HEX = re.compile(r"[0-9a-fA-F-]+")  # digests, UUIDs
# A %-encoded run: characters up to whitespace, quotes, angle brackets or a stray "%", holding escapes. RE2: with
# backtracking, a long run that ends in a stray "%" is retried from every character (quadratic time on text an
# attacker writes). `_PY_WHITESPACE` spells out what `\s` means to Python, so the runs are the ones `re` found.
_PY_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_PCT_RUN = LinearPattern(f"[^{_PY_WHITESPACE}\"'<>%]*(?:%[0-9A-Fa-f]{{2}}[^{_PY_WHITESPACE}\"'<>%]*)+")
_PCT_UNIT = re.compile(r"(?:%[0-9A-Fa-f]{2})+|[^%]|%")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_DECODE_DEPTH = 2

# RE2 gates of the scanner itself. Base64: a run of 24+ alphabet characters that is not all hex and dashes
# (digests and UUIDs are never decoded), or a run followed by padding. Written from the start of the run, by the
# position of its first non-hex character, so that the DFA only counts the run's length: "any window of 24 with
# a non-hex character in it" would make it remember where each such character was, and thrash on base64 data.
# Percent: one escape.
_B64 = "[A-Za-z0-9+/_-]"
_B64_GATE = (
    "(?:^|[^A-Za-z0-9+/_-])(?:"
    + "|".join(f"[0-9a-fA-F-]{{{k}}}[g-zG-Z+/_]{_B64}{{{23 - k}}}" for k in range(23))
    + f"|[0-9a-fA-F-]{{23,}}[g-zG-Z+/_])|{_B64}{{24}}="
)
_PCT_GATE = "%[0-9A-Fa-f]{2}"
# For numeric detectors without a prefilter: nine digits in a run of digits, spaces, dots and dashes, three dots
# in such a run, or "(415)", the candidates around which such detectors used to be run.
_NUMERIC_GATE = r"[0-9](?:[ .-]*[0-9]){8}|[0-9](?:[0-9 -]*\.){3}[0-9 .-]*[0-9]|\([0-9]{3}\)"


def child_path(parent: str, key: str | int) -> str:
    """`parent.key`, `parent[3]`, or `parent["odd key"]` for keys that are not identifiers."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _PLAIN_KEY.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{parent}["{escaped}"]'


# Where a value sits, built as the walk descends and spelled out as a path only for values with findings:
# None (the root), or (parent, step) with a dict key (str) or list index (int) as the step.
_Place = tuple[Any, str | int] | None


def _path(root: str, place: _Place) -> str:
    steps: list[str | int] = []
    while place is not None:
        place, step = place
        steps.append(step)
    path = root
    for step in reversed(steps):
        path = child_path(path, step)
    return path


def _printable(text: str) -> bool:
    if not text:
        return False
    if text.isprintable():
        return True
    good = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    return good >= 0.95 * len(text)


_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
# Maps each byte to b"a" (base64 alphabet) or b" " (anything else), so runs can be found with `bytes.find`; and
# to b"n" (in the alphabet, not hex or a dash) or b" ", to tell digests and UUIDs apart the same way.
_B64_MASK = bytes(ord("a") if chr(i) in _B64_ALPHABET else ord(" ") for i in range(256))
_NOT_HEX_MASK = bytes(
    ord("n") if chr(i) in "ghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ+/_" else ord(" ") for i in range(256)
)
_B64_SEED = b"a" * 24


def _b64_runs(text: str) -> Iterator[tuple[int, int, str]]:
    """Base64-alphabet runs of 24+ characters (plus up to two `=`), as `_B64_RUN` would find them, but for runs
    of hex digits and dashes alone (digests, UUIDs), which `_b64_text` would refuse.

    ASCII text (nearly all of it) is masked with `bytes.translate` and searched for 24 alphabet bytes in a row
    with `bytes.find`: both run at C speed, where a regex pass over prose tries a match at every letter.
    """
    if len(text) < 24:
        return
    if not text.isascii():
        yield from _b64_runs_in_words(text)
        return
    raw = text.encode("ascii")
    mask = raw.translate(_B64_MASK)
    not_hex = raw.translate(_NOT_HEX_MASK)
    size = len(text)
    start = mask.find(_B64_SEED)
    while start >= 0:
        end = mask.find(b" ", start + 24)
        if end < 0:
            end = size
        padded = end
        if end < size and text[end] == "=":
            padded += 2 if text.startswith("==", end) else 1
        if padded > end or not_hex.find(b"n", start, end) >= 0:
            yield start, padded, text[start:padded]
        start = mask.find(_B64_SEED, padded)


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
                if not _HEX.fullmatch(m.group()):
                    yield at + m.start(), at + m.end(), m.group()


def _b64_text(run: str) -> str | None:
    """The UTF-8 text a plausible base64 blob decodes to, or None."""
    if _HEX.fullmatch(run):
        return None  # digests and UUIDs: hex decoded as base64 is noise
    body = run.rstrip("=")
    urlsafe = "-" in body or "_" in body
    try:
        if len(body) > _B64_SNIFF_CHARS:
            # Most large blobs are binary (images, archives): their first few KB already fail as UTF-8, so the
            # whole blob need not be decoded. (An incremental decoder accepts a character cut at the end.)
            head = _b64_decode(body[:_B64_SNIFF_CHARS], urlsafe=urlsafe)
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        text = _b64_decode(body + "=" * (-len(body) % 4), urlsafe=urlsafe).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if _printable(text) else None


_B64_SNIFF_CHARS = 4096  # a multiple of 4: decodes alone, as the start of the blob


def _b64_decode(data: str, *, urlsafe: bool) -> bytes:
    if urlsafe:
        return base64.urlsafe_b64decode(data)
    # `b64decode(validate=True)` first runs a regex over the data; strict mode checks the same in C.
    return binascii.a2b_base64(data.encode("ascii"), strict_mode=True)


class Scanner:
    """Runs a fixed set of detectors over strings and JSON values. Build once, reuse: it holds no state but a
    bounded cache of which field detectors care about which field names (thread-safe: a lost update is redone).
    """

    def __init__(self, detectors: Sequence[Detector] | None = None, *, decode: bool = True) -> None:
        self.detectors: tuple[Detector, ...] = tuple(default_detectors() if detectors is None else detectors)
        self.decode = decode
        self._field_detectors = tuple(d for d in self.detectors if isinstance(d, FieldDetector))
        self._by_field: dict[str, tuple[FieldDetector, ...]] = {}  # a cache of `_fields_for`
        # Textual detectors first, then numeric ones, each in the given order: `_resolve` breaks ties by it.
        ordered = [d for d in self.detectors if not d.needs_digits] + [d for d in self.detectors if d.needs_digits]
        try:
            self._build_gates(ordered, admin_prefilters=True)
        except LinearSyntaxError:
            # Admin patterns are each valid RE2, but many large ones may not fit one set together: then those
            # detectors run on every string instead (they are RE2 themselves, so still linear).
            self._build_gates(ordered, admin_prefilters=False)

    def _build_gates(self, ordered: list[Detector], *, admin_prefilters: bool) -> None:
        gates: dict[str, int] = {}

        def gate(pattern: str) -> int:
            return gates.setdefault(pattern, len(gates))

        self._plan: tuple[tuple[tuple[int, ...], Detector], ...] = tuple(
            (_gates_of(d, gate, admin_prefilters=admin_prefilters), d) for d in ordered
        )
        self._ungated = [i for i, (entries, _) in enumerate(self._plan) if not entries]
        # Gate -> the detectors (positions in `_plan`) whose first gate it is, so a hit names its detectors.
        self._runs_on: dict[int, list[int]] = {}
        for i, (entries, _) in enumerate(self._plan):
            if entries:
                self._runs_on.setdefault(entries[0], []).append(i)
        self._b64 = gate(_B64_GATE)
        self._pct = gate(_PCT_GATE)
        self._gate = PatternSet(list(gates))

    def find(self, text: str, *, key: str | None = None, depth: int = 0) -> list[Finding]:
        """Validated, non-overlapping findings in one string (path empty). `key`: the field holding it."""
        return self._find(text, key, depth, self._gate.match(text))

    def _find(self, text: str, key: str | None, depth: int, hits: list[int]) -> list[Finding]:
        """`find`, given the gates that occur in `text` (`hits`)."""
        found: list[Finding] = []
        if hits or self._ungated:
            chosen = list(self._ungated)
            for g in hits:
                chosen.extend(self._runs_on.get(g, ()))
            chosen.sort()  # plan order: `_resolve` breaks ties by it
            for i in chosen:
                entries, detector = self._plan[i]
                if len(entries) < 2 or all(e in hits for e in entries):
                    found.extend(detector.find(text))
        if key is not None:
            for fd in self._fields_for(key):
                found.extend(fd.find_in_field(key, text))
        if hits and self.decode and depth < MAX_DECODE_DEPTH:
            if self._b64 in hits:
                found.extend(self._b64_decoded(text, depth))
            if self._pct in hits:
                found.extend(self._pct_decoded(text, depth))
        return _resolve(found)

    def _fields_for(self, key: str) -> tuple[FieldDetector, ...]:
        """The field detectors that can judge a value by the field name `key` (all, for those that do not say)."""
        chosen = self._by_field.get(key)
        if chosen is None:
            if len(self._by_field) >= _FIELD_CACHE_SIZE:
                self._by_field.clear()  # field names can be hostile: bounded
            chosen = self._by_field[key] = tuple(fd for fd in self._field_detectors if _accepts(fd, key))
        return chosen

    def _b64_decoded(self, text: str, depth: int) -> Iterator[Finding]:
        for start, end, run in _b64_runs(text):
            decoded = _b64_text(run)
            if decoded is not None:
                for inner in self.find(decoded, depth=depth + 1):
                    yield Finding(inner.detector, start, end, encoding="base64")

    def _pct_decoded(self, text: str, depth: int) -> Iterator[Finding]:
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
        # First the string values with the field holding each, and the set of dict keys; where each string sits is
        # only worked out, by a second walk, when something was found (rarely).
        texts: list[str] = []
        fields: list[str | None] = []
        keys: set[Any] = set()
        _strings(value, None, texts, fields, keys)
        names = {k for k in keys if isinstance(k, str)}
        hits = self._gates_in(names.union(texts))
        if self._ungated:
            candidates: Iterable[int] = range(len(texts))
            scanned_keys: Iterable[str] = names
        else:
            judged = {f for f in set(fields) if f is not None and self._fields_for(f)}
            candidates = [i for i, t in enumerate(texts) if t in hits or fields[i] in judged]
            scanned_keys = names.intersection(hits)
        # The same strings recur (the keys of every record in a list); `_find` is pure, so each (string, field)
        # is scanned once per call.
        found: dict[tuple[str, str | None], list[Finding]] = {}
        for i in candidates:
            text, field = texts[i], fields[i]
            if (text, field) not in found:
                found[text, field] = self._find(text, field, 0, hits.get(text, _NO_HITS))
        in_keys = {k: self._find(k, None, 0, hits.get(k, _NO_HITS)) for k in scanned_keys}
        if not any(found.values()) and not any(in_keys.values()):
            return []
        spots: list[_Spot] = []
        _collect(value, None, None, spots)
        out: list[Finding] = []
        for text, field, place, in_key in spots:
            here = in_keys.get(text) if in_key else found.get((text, field))
            if here:
                where = _path(path, place)
                out.extend(replace(f, path=where, in_key=in_key) for f in here)
        return out

    def _gates_in(self, texts: set[str]) -> dict[str, list[int]]:
        """The gates occurring in each of `texts` (texts with none may be left out).

        Short strings (ids, names, field names) are matched together, joined by NULs (every gate is written to
        work across them, see `Detector`): when no gate occurs, which is usual, one pass clears them all; else the
        batch is halved until the strings with hits are found.
        """
        hits: dict[str, list[int]] = {}
        short = [text for text in texts if len(text) <= _BATCHED_STRING_CHARS]
        if len(short) < len(texts):
            for text in texts:
                if len(text) > _BATCHED_STRING_CHARS and (found := self._gate.match(text)):
                    hits[text] = found
        if short:
            self._gates_in_batch(short, hits)
        return hits

    def _gates_in_batch(self, batch: list[str], hits: dict[str, list[int]]) -> None:
        # A batch with a hit is halved until the strings with hits are found: a few passes, not one per string.
        found = self._gate.match(batch[0] if len(batch) == 1 else "\x00".join(batch))
        if not found:
            return
        if len(batch) == 1:
            hits[batch[0]] = found
            return
        half = len(batch) // 2
        self._gates_in_batch(batch[:half], hits)
        self._gates_in_batch(batch[half:], hits)


# A string to scan: its text, the dict key holding it (values only), where it sits, and whether it is a dict key.
_Spot = tuple[str, str | None, _Place, bool]
_NO_HITS: list[int] = []
_BATCHED_STRING_CHARS = 256  # longer strings are matched alone: they are the likelier to hit a gate
_FIELD_CACHE_SIZE = 4096


def _strings(value: Any, field: str | None, texts: list[str], fields: list[str | None], keys: set[Any]) -> None:
    """Every string value in `value` (`texts`) with the dict key holding it (`fields`; None for list items), and
    every dict key (`keys`, not only strings). The hot loop of a scan: keys are taken a dict at a time, in C, and
    plain strings without a call.
    """
    if isinstance(value, str):
        texts.append(value)
        fields.append(field)
    elif isinstance(value, dict):
        keys.update(value)
        for k, v in value.items():
            if type(v) is str and type(k) is str:
                texts.append(v)
                fields.append(k)
            elif isinstance(v, _CONTAINERS):
                _strings(v, k if isinstance(k, str) else None, texts, fields, keys)
    elif isinstance(value, list | tuple):
        for v in value:
            if type(v) is str:
                texts.append(v)
                fields.append(None)
            elif isinstance(v, _CONTAINERS):
                _strings(v, None, texts, fields, keys)


_CONTAINERS = (str, dict, list, tuple)


def _collect(value: Any, place: _Place, key: str | None, out: list[_Spot]) -> None:
    """Every string in `value`, in document order (a dict key before its value), with where it sits."""
    if isinstance(value, str):
        out.append((value, key, place, False))
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str):
                sub = (place, k)
                out.append((k, None, sub, True))
                _collect(v, sub, k, out)
            else:
                _collect(v, (place, str(k)), None, out)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _collect(v, (place, i), None, out)


def _accepts(detector: FieldDetector, key: str) -> bool:
    accepts = getattr(detector, "accepts_field", None)
    return True if accepts is None else bool(accepts(key))


def _gates_of(detector: Detector, gate: Callable[[str], int], *, admin_prefilters: bool) -> tuple[int, ...]:
    """The gates (indices into the scanner's pattern set) that must all occur for `detector` to run."""
    prefilter = getattr(detector, "prefilter", None)
    if isinstance(prefilter, str):
        admin = isinstance(getattr(detector, "pattern", None), LinearPattern)
        return (gate(prefilter),) if admin_prefilters or not admin else ()
    entries: list[int] = []
    if detector.hints and all(detector.hints):
        entries.append(gate("|".join(re2_escape(h) for h in detector.hints)))
    if detector.needs_digits:
        entries.append(gate(_NUMERIC_GATE))
    return tuple(entries)


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

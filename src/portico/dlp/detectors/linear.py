"""RE2, the linear-time regex engine, behind a small typed surface: admin patterns and the scanner's prefilter.

Python's `re` backtracks, so an operator's pattern such as `(a+)+$` can take exponential time on text an
attacker controls (a tool result). RE2 (`google-re2`) compiles to automata and matches in time linear in the
text, whatever the pattern; it refuses the constructs that need backtracking (backreferences, lookaround) and
patterns whose program would exceed a memory bound, so such patterns are rejected when they are configured.

`PatternSet` is one RE2 `Set`: a single DFA pass over a string says which of many patterns occur somewhere in
it. The scanner uses it as a prefilter in front of the (Python `re`) detectors. (A set's DFA never gives up
for being slow; it would report no match only if a single state did not fit its memory, which at this bound
takes patterns thousands of times larger than any gate.)

RE2 works on UTF-8. A Python string may hold lone surrogates (JSON allows `"\\ud800"`), which do not encode;
`utf8_safe` replaces each by U+FFFD, one character for one, so offsets stay those of the original string.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information; wrapped here, typed

# Room for the DFA of a few dozen patterns; RE2 rejects at compile time what does not fit.
_MAX_MEM = 32 << 20


def _options(*, ignore_case: bool = False) -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # errors are raised, not printed on stderr
    options.max_mem = _MAX_MEM
    options.case_sensitive = not ignore_case
    return options


def utf8_safe(text: str) -> str:
    """`text`, with lone surrogates replaced by U+FFFD so that it encodes to UTF-8 (same length)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")


class LinearSyntaxError(ValueError):
    """RE2 cannot compile the pattern; `reason` is RE2's explanation (it may quote a piece of the pattern)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LinearMatch:
    """The part of a match object `PatternDetector` uses: `group`, `start`, `end` (group 0 or a numbered one)."""

    __slots__ = ("_match",)

    def __init__(self, match: object) -> None:
        self._match = match

    def group(self, index: int = 0) -> str:
        value = self._match.group(index)  # type: ignore[attr-defined]
        if value is None:
            return ""
        return value.decode("ascii") if isinstance(value, bytes) else str(value)

    def start(self, index: int = 0) -> int:
        return int(self._match.start(index))  # type: ignore[attr-defined]

    def end(self, index: int = 0) -> int:
        return int(self._match.end(index))  # type: ignore[attr-defined]


class LinearPattern:
    """A compiled RE2 pattern; matching time is linear in the text.

    Raises:
        LinearSyntaxError: RE2 cannot compile `pattern` (unsupported construct, syntax error, too large).
    """

    def __init__(self, pattern: str, *, ignore_case: bool = False) -> None:
        self.pattern = pattern
        self.ignore_case = ignore_case
        try:
            self._compiled = re2.compile(pattern, _options(ignore_case=ignore_case))
        except re2.error as exc:
            raise LinearSyntaxError(_reason(exc)) from exc

    def finditer(self, text: str) -> Iterator[LinearMatch]:
        """Non-overlapping matches, leftmost first, with offsets into `text`."""
        # ASCII text is matched as bytes, whose offsets are the characters': this skips the binding's mapping of
        # UTF-8 offsets back to characters, which costs more than the match itself on short texts.
        subject: str | bytes = text.encode("ascii") if text.isascii() else utf8_safe(text)
        for m in self._compiled.finditer(subject):
            yield LinearMatch(m)

    def search(self, text: str) -> LinearMatch | None:
        m = self._compiled.search(utf8_safe(text))
        return None if m is None else LinearMatch(m)

    def fullmatch(self, text: str) -> LinearMatch | None:
        m = self._compiled.fullmatch(utf8_safe(text))
        return None if m is None else LinearMatch(m)

    def __repr__(self) -> str:
        return f"LinearPattern({self.pattern!r})"


class PatternSet:
    """Many RE2 patterns matched in one pass: `match(text)` lists the indices of those that occur in `text`.

    Raises:
        LinearSyntaxError: a pattern does not compile or the set does not fit the memory bound.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self._set = re2.Set.SearchSet(_options())
        try:
            for pattern in self.patterns:
                self._set.Add(pattern)
            if self.patterns:
                self._set.Compile()
        except re2.error as exc:
            raise LinearSyntaxError(_reason(exc)) from exc

    def match(self, text: str) -> list[int]:
        """Indices (into `patterns`) of the patterns found somewhere in `text`, in no particular order."""
        if not self.patterns:
            return []
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            # Offsets do not matter here; a replacement character is a non-word character like a surrogate.
            data = text.encode("utf-8", "replace")
        found: list[int] | None = self._set.Match(data)
        return found or []


def _reason(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else exc
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def re2_escape(literal: str) -> str:
    """An RE2 pattern matching exactly `literal`."""
    return str(re2.escape(literal))

"""Admin-defined detectors: a named regex, or a named keyword list, built from configuration.

Admin regexes are compiled with RE2 (`linear`), not Python's `re`: they run on text an attacker may control
(tool results), and RE2 matches in time linear in the text whatever the pattern, so a pattern like `(a+)+$` cannot
hang a worker. The syntax is RE2's: no backreferences or lookaround, `\\d` `\\w` `\\s` `\\b` are ASCII. Keyword
lists are escaped literals, which Python's `re` matches without backtracking.

Configuration errors (a pattern RE2 cannot compile, one that matches the empty string, an empty keyword list)
raise `ConfigError` naming the detector; the pattern itself goes to the private detail only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from portico.dlp.detectors.linear import LinearPattern, LinearSyntaxError, re2_escape
from portico.dlp.detectors.pattern import PatternDetector
from portico.errors import ConfigError


def regex_detector(name: str, pattern: str, *, ignore_case: bool = False) -> PatternDetector:
    """A detector for an admin regex (RE2 syntax); the whole match is the finding.

    Raises:
        ConfigError: the pattern does not compile with RE2 (syntax error, backreference, lookaround, too large)
            or matches the empty string.
    """
    try:
        compiled = LinearPattern(pattern, ignore_case=ignore_case)
    except LinearSyntaxError as exc:
        raise ConfigError(
            f"dlp detector {name!r}: the pattern {_why_rejected(pattern, exc.reason)}",
            detail=f"{pattern!r}: {exc.reason}",
        ) from exc
    if compiled.fullmatch("") is not None:
        raise ConfigError(f"dlp detector {name!r}: regex matches the empty string", detail=repr(pattern))
    # The pattern is its own prefilter (same engine, same pattern), unless it anchors to the start or end of the
    # text, which a batch of strings joined by NULs would move (see `Detector`).
    anchored = any(mark in pattern for mark in ("^", "$", "\\A", "\\z"))
    prefilter = None if anchored else ("(?i)" if ignore_case else "") + pattern
    return PatternDetector(name, compiled, prefilter=prefilter)


def keyword_detector(name: str, words: Iterable[str], *, ignore_case: bool = True) -> PatternDetector:
    """A detector for any of `words` as whole words (or whole phrases).

    Raises:
        ConfigError: the list is empty or holds only blank entries.
    """
    cleaned = sorted({w.strip() for w in words if w.strip()}, key=len, reverse=True)
    if not cleaned:
        raise ConfigError(f"dlp detector {name!r}: keyword list is empty")
    body = "|".join(re.escape(w) for w in cleaned)
    compiled = re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE if ignore_case else 0)
    if not ignore_case:
        return PatternDetector(name, compiled, hints=tuple(cleaned))
    # Case-insensitive: a prefilter that folds case as Python's `re` does. For ASCII letters that is the letter,
    # its other case, and the few non-ASCII letters `re` folds onto them; other scripts' folding may differ
    # between the engines, so keywords outside ASCII go without a prefilter (the detector runs on every string).
    prefilter = "|".join(_folded(w) for w in cleaned) if all(w.isascii() for w in cleaned) else None
    return PatternDetector(name, compiled, prefilter=prefilter)


# Non-ASCII characters Python's `re` matches, ignoring case, against an ASCII letter (the Turkish dotted and
# dotless i, the Kelvin sign, the long s).
_PY_FOLDS = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}


def _folded(word: str) -> str:
    """An RE2 pattern for `word` (ASCII) in any case, as Python's `re.IGNORECASE` would match it."""
    out = []
    for c in word:
        if c.isalpha():
            out.append(f"[{c.lower()}{c.upper()}{_PY_FOLDS.get(c.lower(), '')}]")
        else:
            out.append(re2_escape(c))
    return "".join(out)


def _why_rejected(pattern: str, reason: str) -> str:
    if "too large" in reason or "repetition size" in reason:
        return "is too large for the linear-time regex engine (RE2)"
    try:
        re.compile(pattern)  # compiling never matches, so this cannot backtrack; it only tells the two cases apart
    except re.error:
        return "is not a valid regex"
    return (
        "uses a construct the linear-time regex engine (RE2) does not support "
        "(backreferences, lookaround, possessive quantifiers, \\Z and the like)"
    )

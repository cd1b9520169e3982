"""Admin-defined detectors: a named regex, or a named keyword list, built from configuration.

Configuration errors (a pattern that does not compile, one that matches the empty string, an empty keyword
list) raise `ConfigError`; the pattern itself goes to the private detail only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from portico.dlp.detectors.pattern import PatternDetector
from portico.errors import ConfigError


def regex_detector(name: str, pattern: str, *, ignore_case: bool = False) -> PatternDetector:
    """A detector for an admin regex; the whole match is the finding.

    Raises:
        ConfigError: the pattern does not compile or matches the empty string.
    """
    try:
        compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ConfigError(f"dlp detector {name!r}: invalid regex", detail=f"{pattern!r}: {exc}") from exc
    if compiled.fullmatch(""):
        raise ConfigError(f"dlp detector {name!r}: regex matches the empty string", detail=repr(pattern))
    return PatternDetector(name, compiled)


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
    hints = () if ignore_case else tuple(cleaned)
    return PatternDetector(name, compiled, hints=hints)

"""US Social Security numbers written `AAA-GG-SSSS`.

Validation (`stdnum.us.ssn`): area not 000, 666 or 900-999; group not 00; serial not 0000; not one of the
numbers known to be invalid or published (078-05-1120, 219-09-9999, …). Undashed nine-digit numbers are only
taken when a field or nearby word says "ssn" / "social security", since bare nine-digit numbers are everywhere.
"""

from __future__ import annotations

import re
from functools import lru_cache

from stdnum.us import ssn as stdnum_ssn

from portico.dlp.model import Finding

_DASHED = re.compile(r"\d(?<![\w-]\d)\d\d-\d\d-\d{4}(?![\w]|-\d)", re.ASCII)
_BARE_IN_CONTEXT = re.compile(
    r"(?i:ssn|social security(?: number| no\.?)?)\W{1,4}(\d{3}[ ]?\d{2}[ ]?\d{4})(?![\w-])", re.ASCII
)
_SSN_FIELD = re.compile(r"(?i)(?:^|_|\b)(?:ssn|social_?security(?:_?number)?)$", re.ASCII)
# RE2 (see `Detector`): a dashed number with `_DASHED`'s boundaries, or `_BARE_IN_CONTEXT` without its lookahead
# (the words alone occur by chance in base64 data, where running `find` would be slow).
PREFILTER = (
    r"(?:^|[^A-Za-z0-9_-])[0-9]{3}-[0-9]{2}-[0-9]{4}(?:$|[^A-Za-z0-9_-]|-(?:$|[^0-9]))"
    r"|(?i:ssn|social security(?: number| no\.?)?)[^A-Za-z0-9_]{1,4}[0-9]{3} ?[0-9]{2} ?[0-9]{4}"
)
_BARE = re.compile(r"\d{3}[ -]?\d{2}[ -]?\d{4}", re.ASCII)


@lru_cache(maxsize=4096)  # field names recur in every call of a tool; bounded, since names can be hostile
def _names_ssn(key: str) -> bool:
    return _SSN_FIELD.search(key) is not None


def ssn_ok(candidate: str) -> bool:
    """Whether `candidate` (dashed, spaced or compact) is an SSN that could have been issued."""
    return bool(stdnum_ssn.is_valid(candidate.replace(" ", "")))


class SsnDetector:
    """US SSNs (see module docstring)."""

    name = "us_ssn"
    hints: tuple[str, ...] = ()
    needs_digits = True
    prefilter = PREFILTER

    def find(self, text: str) -> list[Finding]:
        found = {(m.start(), m.end()) for m in _DASHED.finditer(text) if ssn_ok(m.group())}
        if "ssn" in text or "SSN" in text or "ecurity" in text:
            found |= {(m.start(1), m.end(1)) for m in _BARE_IN_CONTEXT.finditer(text) if ssn_ok(m.group(1))}
        return [Finding(self.name, s, e) for s, e in sorted(found)]

    def accepts_field(self, key: str) -> bool:
        return _names_ssn(key)

    def find_in_field(self, key: str, text: str) -> list[Finding]:
        if _names_ssn(key) and _BARE.fullmatch(text.strip()) and ssn_ok(text.strip()):
            start = len(text) - len(text.lstrip())
            return [Finding(self.name, start, start + len(text.strip()))]
        return []

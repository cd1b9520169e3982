"""US Social Security numbers written `AAA-GG-SSSS`.

Validation (`stdnum.us.ssn`): area not 000, 666 or 900-999; group not 00; serial not 0000; not one of the
numbers known to be invalid or published (078-05-1120, 219-09-9999, …). Undashed nine-digit numbers are only
taken when a field or nearby word says "ssn" / "social security", since bare nine-digit numbers are everywhere.
"""

from __future__ import annotations

import re

from stdnum.us import ssn as stdnum_ssn

from portico.dlp.model import Finding

_DASHED = re.compile(r"\d(?<![\w-]\d)\d\d-\d\d-\d{4}(?![\w]|-\d)", re.ASCII)
_BARE_IN_CONTEXT = re.compile(
    r"(?i:ssn|social security(?: number| no\.?)?)\W{1,4}(\d{3}[ ]?\d{2}[ ]?\d{4})(?![\w-])", re.ASCII
)
_SSN_FIELD = re.compile(r"(?i)(?:^|_|\b)(?:ssn|social_?security(?:_?number)?)$", re.ASCII)
_BARE = re.compile(r"\d{3}[ -]?\d{2}[ -]?\d{4}", re.ASCII)


def ssn_ok(candidate: str) -> bool:
    """Whether `candidate` (dashed, spaced or compact) is an SSN that could have been issued."""
    return bool(stdnum_ssn.is_valid(candidate.replace(" ", "")))


class SsnDetector:
    """US SSNs (see module docstring)."""

    name = "us_ssn"
    hints: tuple[str, ...] = ()
    needs_digits = True

    def find(self, text: str) -> list[Finding]:
        found = {(m.start(), m.end()) for m in _DASHED.finditer(text) if ssn_ok(m.group())}
        if "ssn" in text or "SSN" in text or "ecurity" in text:
            found |= {(m.start(1), m.end(1)) for m in _BARE_IN_CONTEXT.finditer(text) if ssn_ok(m.group(1))}
        return [Finding(self.name, s, e) for s, e in sorted(found)]

    def find_in_field(self, key: str, text: str) -> list[Finding]:
        if _SSN_FIELD.search(key) and _BARE.fullmatch(text.strip()) and ssn_ok(text.strip()):
            start = len(text) - len(text.lstrip())
            return [Finding(self.name, start, start + len(text.strip()))]
        return []

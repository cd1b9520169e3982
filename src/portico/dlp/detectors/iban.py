"""International Bank Account Numbers (ISO 13616), compact or in groups of four.

Validation by `python-stdnum`: the country's registered length and format (BBAN structure) and the ISO 7064
mod 97-10 check digits. A candidate is trimmed to the longest prefix that validates, so text that follows an
IBAN written in groups ("DE89 3704 0044 0532 0130 00 EUR") does not spoil it.
"""

from __future__ import annotations

import re

from stdnum import iban as stdnum_iban

from portico.dlp.model import Finding

_CANDIDATE = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d\d(?: ?[A-Z0-9]){11,30}", re.ASCII)


def _best_end(candidate: str) -> int | None:
    """End offset (within `candidate`) of the longest prefix that is a valid IBAN, if any."""
    compact_positions = [i for i, c in enumerate(candidate) if c != " "]
    compact = candidate.replace(" ", "")
    for length in range(min(len(compact), 34), 14, -1):
        end = compact_positions[length - 1] + 1
        if end < len(candidate) and candidate[end].isalnum():
            continue  # a prefix must end at a group or token boundary
        if stdnum_iban.is_valid(compact[:length]):
            return end
    return None


class IbanDetector:
    """IBANs (see module docstring)."""

    name = "iban"
    hints: tuple[str, ...] = ()
    needs_digits = True

    def find(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        for m in _CANDIDATE.finditer(text):
            end = _best_end(m.group())
            if end is not None and not text[m.start() + end : m.start() + end + 1].isalnum():
                out.append(Finding(self.name, m.start(), m.start() + end))
        return out

"""International Bank Account Numbers (ISO 13616), compact or in groups of four.

Validation by `python-stdnum`: the country's registered length and format (BBAN structure) and the ISO 7064
mod 97-10 check digits. A candidate is trimmed to the longest prefix that validates, so text that follows an
IBAN written in groups ("DE89 3704 0044 0532 0130 00 EUR") does not spoil it.
"""

from __future__ import annotations

import re

from stdnum import iban as stdnum_iban

from portico.dlp.detectors.linear import LinearPattern
from portico.dlp.model import Finding

_CANDIDATE = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d\d(?: ?[A-Z0-9]){11,30}", re.ASCII)

# Maximal runs of the candidate's shape (RE2, leftmost and greedy: each match extends to the end of its run).
# Every `_CANDIDATE` match lies inside one, so `_CANDIDATE` need only try the runs.
_RUNS = LinearPattern(r"[A-Z][A-Z][0-9][0-9](?: ?[A-Z0-9]){11,}")
PREFILTER = r"(?:^|[^A-Za-z0-9])[A-Z][A-Z][0-9][0-9](?: ?[A-Z0-9]){11}"  # RE2, see `Detector`


def checksum_lengths(compact: str) -> list[int]:
    """The lengths (15-34) of the prefixes of `compact` (letters and digits) whose ISO 7064 mod 97-10 check holds.

    The check every IBAN passes, computed for all prefixes in one pass (the number with its first four characters
    moved to the end, letters as 10-35, is 1 mod 97): about one prefix in 97 passes, so only those few are
    handed to stdnum's full validation, which repeats this check and adds the country's format.
    """
    head = "".join(str(int(c, 36)) for c in compact[:4])
    head_value, head_shift = int(head) % 97, 10 ** len(head) % 97
    rest = 0
    lengths = []
    for i in range(4, min(len(compact), 34)):
        value = int(compact[i], 36)
        rest = (rest * (100 if value > 9 else 10) + value) % 97
        if i >= 14 and (rest * head_shift + head_value) % 97 == 1:
            lengths.append(i + 1)
    return lengths


def _best_end(candidate: str) -> int | None:
    """End offset (within `candidate`) of the longest prefix that is a valid IBAN, if any."""
    compact_positions = [i for i, c in enumerate(candidate) if c != " "]
    compact = candidate.replace(" ", "")
    for length in reversed(checksum_lengths(compact)):
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
    prefilter = PREFILTER

    def find(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        for run in _RUNS.finditer(text):
            for m in _CANDIDATE.finditer(text, run.start(), run.end()):
                end = _best_end(m.group())
                if end is not None and not text[m.start() + end : m.start() + end + 1].isalnum():
                    out.append(Finding(self.name, m.start(), m.start() + end))
        return out

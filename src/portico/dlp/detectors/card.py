"""Payment card numbers (PAN): 13-19 digits, optionally grouped by spaces or dashes.

Validation: one consistent separator; grouping 4-4-4-4(-3), 4-6-5 or 4-6-4 when separated; Luhn checksum; an
issuer (IIN) range of a major scheme with a length that scheme issues; not a run of one repeated digit.
"""

from __future__ import annotations

import re

from portico.dlp.detectors.linear import LinearPattern
from portico.dlp.model import Finding

# The first digit is matched before the look-behind so that the regex engine can skip to digits quickly.
_CANDIDATE = re.compile(r"\d(?<![\w.,/+-]\d)(?:[ -]?\d){12,18}(?![\w.,/]\d|[\w]|-\d)", re.ASCII)

# Maximal runs of digits with single space or dash separators holding 13+ digits (RE2, leftmost and greedy, so
# each match is a whole run). Every `_CANDIDATE` match lies inside one, and its lookaround looks at most two
# characters past it, so `_CANDIDATE` need only try the runs: in digit-heavy text (ids, UUIDs, timestamps)
# that spares the regex engine an attempt at every digit.
_RUNS = LinearPattern(r"[0-9](?:[ -]?[0-9]){12,}")

# RE2 (see `Detector`): 13-19 digits with `_CANDIDATE`'s boundaries, written without lookaround.
PREFILTER = r"(?:^|[^A-Za-z0-9_.,/+-])[0-9](?:[ -]?[0-9]){12,18}(?:$|[^A-Za-z0-9_.,/-]|[.,/-](?:$|[^0-9]))"

_GROUPINGS = {(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 2), (4, 4, 4, 1)}


_DOUBLED = {str(d): (2 * d - 9 if d > 4 else 2 * d) for d in range(10)}


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check over a string of ASCII digits."""
    kept = sum(map(int, digits[-1::-2]))
    doubled = sum(map(_DOUBLED.__getitem__, digits[-2::-2]))
    return (kept + doubled) % 10 == 0


def issuer_ok(digits: str) -> bool:
    """Whether the number starts with a major scheme's IIN and has a length that scheme issues."""
    n = len(digits)
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 222100 <= p6 <= 272099:  # Mastercard
        return n == 16
    if p2 in (34, 37):  # American Express
        return n == 15
    if p4 == 6011 or 644 <= p3 <= 649 or p2 == 65:  # Discover
        return 16 <= n <= 19
    if 3528 <= p4 <= 3589:  # JCB
        return 16 <= n <= 19
    if 300 <= p3 <= 305 or p2 in (36, 38, 39):  # Diners Club
        return 14 <= n <= 19
    if p2 == 62:  # UnionPay
        return 16 <= n <= 19
    if p2 == 50 or 56 <= p2 <= 58 or p2 == 67:  # Maestro
        return 13 <= n <= 19
    return False


def card_ok(candidate: str) -> bool:
    """Validate one candidate as written (digits with at most one kind of separator)."""
    seps = {c for c in candidate if not c.isdigit()}
    if len(seps) > 1:
        return False
    if seps:
        groups = tuple(len(g) for g in candidate.split(seps.pop()))
        if groups not in _GROUPINGS:
            return False
    digits = "".join(c for c in candidate if c.isdigit())
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    return issuer_ok(digits) and luhn_ok(digits)


class CardDetector:
    """Payment card numbers (see module docstring for the rules)."""

    name = "card"
    hints: tuple[str, ...] = ()
    needs_digits = True
    prefilter = PREFILTER

    def find(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        for run in _RUNS.finditer(text):
            for m in _CANDIDATE.finditer(text, run.start(), min(len(text), run.end() + 2)):
                if card_ok(m.group()):
                    out.append(Finding(self.name, m.start(), m.end()))
        return out

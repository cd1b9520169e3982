"""Plain values of the DLP engine: a finding and the detector protocols.

A `Finding` names what was found and where (detector, JSON path, offsets), never the matched text itself, so a
finding can be logged, audited or put in an error's private detail without leaking the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Finding:
    """One validated match: `text[start:end]` of the string at `path` is a `detector` hit.

    `in_key` marks a match inside a dict key rather than its value. `encoding` is set when the match was found
    after decoding (`"base64"`, `"url"`); then `start:end` is the span of the encoded run in the original string.
    The matched value is deliberately not stored.
    """

    detector: str
    start: int
    end: int
    path: str = ""
    in_key: bool = False
    encoding: str | None = None


@runtime_checkable
class Detector(Protocol):
    """Finds and validates one kind of sensitive value in a string.

    `hints` are literals of which at least one must occur in the text for `find` to be worth calling (empty: no
    literal gate); `needs_digits` says the detector only matches around numeric candidates (9+ digits, a dotted
    quad, an area code in parentheses), so the scanner runs it only on strings that hold one. The scanner checks
    both in one pass per string so that most strings skip most detectors.

    A detector may also have a `prefilter` attribute (not part of the protocol, so that existing detectors stay
    valid): an RE2 pattern (`detectors.linear`) that is found somewhere in every text where `find` finds
    something, including when the text is embedded between NUL characters. The scanner matches all prefilters in
    one pass and calls `find` only where its prefilter occurs; `hints` and `needs_digits` then gate nothing.
    Anchors must be written so that a NUL works like the edge of the text (`(?:^|[^0-9])`, never a bare `^`).
    All prefilters share one DFA: a counted repetition should start at a boundary or after a literal and be
    short, lest the DFA have to remember many overlapping counts (it stays linear, but slows down).
    """

    name: str
    hints: tuple[str, ...]
    needs_digits: bool

    def find(self, text: str) -> list[Finding]:
        """Return the validated matches in `text`, in order, with an empty `path`."""
        ...


@runtime_checkable
class FieldDetector(Protocol):
    """A detector that also judges a value by the name of the field holding it (`{"aws_secret_access_key": v}`)."""

    name: str

    def find_in_field(self, key: str, text: str) -> list[Finding]:
        """Return matches in `text` given that it is the value of the dict key `key`."""
        ...


# A field detector may also have a method `accepts_field(key: str) -> bool` (not part of the protocol, so that
# existing field detectors stay valid): False when `find_in_field(key, text)` is empty whatever the text. The
# scanner asks once per field name and then skips the detector for values of fields it does not accept.

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
    quad, an area code in parentheses), so the scanner runs it on those neighbourhoods only. The scanner checks both
    once per string so that most strings skip most detectors.
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

"""National identifiers validated by `python-stdnum`.

* `fr_nir` — French social security number (NIR): 15 digits (or grouped `2 95 10 99 126 111 93`), sex digit 1/2,
  month 01-12 (or 20+ for unknown), mod-97 key. Distinctive enough to take without context.
* `de_idnr` — German tax ID (Steuerliche Identifikationsnummer): 11 digits, first not 0, the digit-repetition
  rule and the ISO 7064 mod 11,10 check digit. Taken only near a keyword (Steuer-ID, IdNr, tax id), because
  about one random 11-digit number in a hundred validates.
* `nl_bsn` — Dutch citizen service number: 9 digits, "11-proof". Only near a keyword (BSN, burgerservicenummer):
  one random 9-digit number in eleven passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from stdnum.de import idnr
from stdnum.fr import nir
from stdnum.nl import bsn

from portico.dlp.model import Finding


class StdnumDetector:
    """Candidates from a regex, validated by a stdnum `is_valid`; optionally only within reach of a keyword."""

    def __init__(
        self,
        name: str,
        pattern: str,
        is_valid: Callable[[str], bool],
        *,
        context: str | None = None,
        hints: tuple[str, ...] = (),
        reach: int = 40,
        prefilter: str | None = None,
    ) -> None:
        self.name = name
        self.hints = hints
        self.needs_digits = True
        self._pattern = re.compile(pattern, re.ASCII)
        self._is_valid = is_valid
        self._context = re.compile(context, re.IGNORECASE) if context else None
        self._field = re.compile(rf"(?:{context})\W*$", re.IGNORECASE) if context else None
        self._reach = reach
        self.prefilter = prefilter

    def find(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        for m in self._pattern.finditer(text):
            if self._context is not None and not self._context.search(text, max(0, m.start() - self._reach), m.start()):
                continue
            if self._is_valid(re.sub(r"[ .-]", "", m.group())):
                out.append(Finding(self.name, m.start(), m.end()))
        return out

    def accepts_field(self, key: str) -> bool:
        return self._field is not None and _names_field(self._field, key)

    def find_in_field(self, key: str, text: str) -> list[Finding]:
        if self._field is None or not _names_field(self._field, key):
            return []
        stripped = text.strip()
        m = self._pattern.fullmatch(stripped)
        if m and self._is_valid(re.sub(r"[ .-]", "", stripped)):
            start = text.index(stripped)
            return [Finding(self.name, start, start + len(stripped))]
        return []


@lru_cache(maxsize=4096)  # field names recur in every call of a tool; bounded, since names can be hostile
def _names_field(field: re.Pattern[str], key: str) -> bool:
    return field.search(key) is not None


def _bounded(number: str) -> str:
    """An RE2 prefilter (see `Detector`): `number` with the boundaries the candidate patterns below require."""
    return rf"(?:^|[^A-Za-z0-9_.-]){number}(?:$|[^A-Za-z0-9_.-]|[.-](?:$|[^0-9]))"


def fr_nir() -> StdnumDetector:
    return StdnumDetector(
        "fr_nir",
        r"[12](?<![\w.-][12])(?: ?\d\d){2} ?(?:\d\d|2[AB]) ?\d{3} ?\d{3} ?\d\d(?![\w]|[.-]\d)",
        nir.is_valid,
        prefilter=_bounded(r"[12](?: ?[0-9][0-9]){2} ?(?:[0-9][0-9]|2[AB]) ?[0-9]{3} ?[0-9]{3} ?[0-9][0-9]"),
    )


def de_idnr() -> StdnumDetector:
    return StdnumDetector(
        "de_idnr",
        r"[1-9](?<![\w.-][1-9])\d(?: ?\d){9}(?![\w]|[.-]\d)",
        idnr.is_valid,
        context=r"steuer[- ]?id|steuerliche|identifikationsnummer|\bidnr|tax[ _-]?id|\btin\b",
        hints=("teuer", "TEUER", "dentifikation", "IdNr", "idnr", "IDNR", "tax", "Tax", "TAX", "TIN"),
        prefilter=_bounded(r"[1-9][0-9](?: ?[0-9]){9}"),
    )


def nl_bsn() -> StdnumDetector:
    return StdnumDetector(
        "nl_bsn",
        r"\d(?<![\w.-]\d)\d{2}[ .]?\d{2}[ .]?\d{2}[ .]?\d{2}(?![\w]|[.-]\d)",
        bsn.is_valid,
        context=r"\bbsn\b|burgerservice|citizen service number",
        hints=("BSN", "bsn", "Bsn", "urgerservice", "URGERSERVICE", "itizen service", "ITIZEN SERVICE"),
        prefilter=_bounded(r"[0-9]{3}[ .]?[0-9]{2}[ .]?[0-9]{2}[ .]?[0-9]{2}"),
    )

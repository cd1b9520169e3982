"""The generic regex-plus-validator detector most detectors are built from."""

from __future__ import annotations

import re
from collections.abc import Callable

from portico.dlp.detectors.linear import LinearPattern
from portico.dlp.model import Finding

Validator = Callable[[str], bool]


class PatternDetector:
    """Candidates from one compiled regex; each candidate (group `group`) kept only if `validate` accepts it.

    `pattern` is a Python `re` pattern (built-in detectors, written with care not to backtrack) or a
    `LinearPattern` (RE2; admin patterns). `prefilter`, if given, is an RE2 pattern found in every text where
    this detector finds something (see `Detector`).
    """

    def __init__(
        self,
        name: str,
        pattern: re.Pattern[str] | LinearPattern,
        *,
        hints: tuple[str, ...] = (),
        needs_digits: bool = False,
        validate: Validator | None = None,
        group: int = 0,
        prefilter: str | None = None,
    ) -> None:
        self.name = name
        self.pattern = pattern
        self.hints = hints
        self.needs_digits = needs_digits
        self.prefilter = prefilter
        self._validate = validate
        self._group = group

    def find(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        g = self._group
        for m in self.pattern.finditer(text):
            if self._validate is None or self._validate(m.group(g)):
                out.append(Finding(self.name, m.start(g), m.end(g)))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

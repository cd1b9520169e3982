"""The generic regex-plus-validator detector most detectors are built from."""

from __future__ import annotations

import re
from collections.abc import Callable

from portico.dlp.model import Finding

Validator = Callable[[str], bool]


class PatternDetector:
    """Candidates from one compiled regex; each candidate (group `group`) kept only if `validate` accepts it."""

    def __init__(
        self,
        name: str,
        pattern: re.Pattern[str],
        *,
        hints: tuple[str, ...] = (),
        needs_digits: bool = False,
        validate: Validator | None = None,
        group: int = 0,
    ) -> None:
        self.name = name
        self.pattern = pattern
        self.hints = hints
        self.needs_digits = needs_digits
        self._validate = validate
        self._group = group

    def find(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        for m in self.pattern.finditer(text):
            value = m.group(self._group)
            if self._validate is None or self._validate(value):
                out.append(Finding(self.name, m.start(self._group), m.end(self._group)))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

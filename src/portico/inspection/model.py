"""Plain values produced by the inspection detectors."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How a finding should be acted on: `block` quarantines the tool, `warn` only reports."""

    BLOCK = "block"
    WARN = "warn"


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule hit in a tool definition.

    `code` is stable (see `portico.inspection.poisoning`), `where` is a dotted path into the definition
    (`inputSchema.properties.path.description`), `reason` is a short text for an administrator.
    """

    code: str
    severity: Severity
    where: str
    reason: str


@dataclass(frozen=True, slots=True)
class Score:
    """A prompt-injection score in [0, 1] with the names of the signals that contributed to it."""

    value: float
    signals: tuple[str, ...]

"""One message's injection score from both layers, and the verdict a profile gives it.

    Scorer(classifier, max_chars).score(text) -> Scored          (CPU-bound: long texts are scored in a thread)
    verdict(score, profile, direction, oversize) -> Verdict

Layers. The heuristic (`portico.inspection.injection.score`) always runs. The learned classifier
(`portico.inspection.learned`, the optional `ml` extra, contract `load_classifier() -> Classifier | None`) runs
when configured and installed, on the same (capped) text; it windows long texts itself and answers the highest
window's probability. The two are combined by taking the **maximum**:
they look at the same words, so their errors are correlated, and a noisy-or (1 - (1-h)(1-p)) would count one
suspicious phrase twice and push two lukewarm opinions over the block threshold. With the maximum each layer
must reach a threshold on its own; the classifier adds recall on phrasing the rules were never written for
(signal `learned` when it alone put a message over `flag_at`), the heuristic keeps its cheap, explainable hits.

Size cap. A message longer than `max_chars` is scored on its first and last `max_chars / 2` characters (where
instructions aimed at a model sit in practice), with signal `oversize`; or blocked outright with
`oversize: block`. The cap bounds the cost per message: the heuristic runs at roughly 2.5 ms per KiB.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from portico.errors import ConfigError
from portico.inspection import injection
from portico.inspection.model import Score
from portico.inspection.settings import LearnedMode, Oversize, Profile

Direction = Literal["request", "response"]
Action = Literal["pass", "flag", "annotate", "block", "error"]
LEARNED = "learned"
OVERSIZE = "oversize"


class Classifier(Protocol):
    """The learned layer's contract (implemented by `portico.inspection.learned`)."""

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        """The probability that each text is a prompt injection, in order."""
        ...


def load_learned(mode: LearnedMode) -> Classifier | None:
    """The learned classifier as `inspection.learned` asks: None for `off`, or for `auto` when it is not installed.

    Raises:
        ConfigError: `on`, and the classifier (the `ml` extra, or its model) is not available.
    """
    if mode == "off":
        return None
    classifier: Classifier | None = None
    try:
        module: Any = importlib.import_module("portico.inspection.learned")
    except ImportError:
        module = None
    if module is not None:
        classifier = module.load_classifier()
    if classifier is None and mode == "on":
        raise ConfigError(
            "inspection.learned is `on` but no learned classifier is available: install Portico with the `ml` "
            "extra and its model, or set inspection.learned to `auto` or `off`"
        )
    return classifier


@dataclass(frozen=True, slots=True)
class Verdict:
    """What inspection decided about one message. Holds no text of it."""

    score: float
    signals: tuple[str, ...]
    action: Action
    direction: Direction
    learned: float | None = None  # the classifier's probability, when it ran

    def audit(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "score": self.score,
            "signals": list(self.signals),
            "action": self.action,
            "direction": self.direction,
        }
        if self.learned is not None:
            record["learned"] = self.learned
        return record


@dataclass(frozen=True, slots=True)
class Scored:
    """Both layers' opinions of one message: the heuristic's `Score`, the classifier's probability (None when it
    did not run), and whether the message was over the size cap."""

    heuristic: Score
    learned: float | None
    oversize: bool


class Scorer:
    """Scores one message's text with the heuristic and, when given, the learned classifier."""

    def __init__(self, classifier: Classifier | None, max_chars: int) -> None:
        self.classifier = classifier
        self.max_chars = max_chars

    def score(self, text: str) -> Scored:
        """Raises:
        ValueError: the classifier answered something other than one probability in [0, 1].
        Exception: whatever a scorer raised (the stage fails closed on it).
        """
        oversize = len(text) > self.max_chars
        if oversize:
            half = self.max_chars // 2
            text = text[:half] + "\n\n" + text[-half:]
        heuristic = injection.score(text)
        learned: float | None = None
        if self.classifier is not None:
            probabilities = self.classifier.probabilities([text])
            if len(probabilities) != 1 or not _probability(probabilities[0]):
                raise ValueError("the learned classifier must return one probability in [0, 1] per text")
            learned = round(float(probabilities[0]), 4)
        return Scored(heuristic, learned, oversize)


def verdict(scored: Scored, profile: Profile, direction: Direction, oversize: Oversize) -> Verdict:
    """The combined score (the higher layer's) and what it earns: block at `block_at` (or when oversize and
    `oversize: block`), `on_suspect` at `flag_at` (a request is flagged: there is no model to warn on the way
    in), else pass. Signal `learned` is added when the classifier alone put the message at or over `flag_at`."""
    value, signals = scored.heuristic.value, list(scored.heuristic.signals)
    if scored.learned is not None and scored.learned > value:
        value = scored.learned
        if value >= profile.flag_at:
            signals.append(LEARNED)
    if scored.oversize:
        signals.append(OVERSIZE)
    action: Action = "pass"
    if (profile.block_at is not None and value >= profile.block_at) or (oversize == "block" and scored.oversize):
        action = "block"
    elif value >= profile.flag_at:
        action = profile.on_suspect if direction == "response" else "flag"
    return Verdict(value, tuple(signals), action, direction, scored.learned)


def _probability(value: object) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1

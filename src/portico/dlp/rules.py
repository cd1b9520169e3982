"""DLP rules compiled once from `dlp:` settings, asked per call which rules apply and what to run.

`DlpRules.plan(server, name, direction, groups)` answers with a `Plan`: the applicable rules, one `Scanner` for
the union of their detectors (so a payload is scanned once per direction, however many rules apply), and for
each detector the rule whose action its findings get (the strongest: block > redact > log; the first in
config order on a tie). Plans are cached per (server, name, direction, the caller's groups that some rule
names), bounded; scanners are shared between plans with the same detectors.

Pure: imports the DLP engine, `dlp.settings` and `portico.errors`; the stage (`dlp.stage`) is its only user.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from portico.dlp import Detector, Scanner, default_detectors
from portico.dlp.settings import Action, DlpSettings, Selector, expand
from portico.errors import ConfigError

Direction = Literal["request", "response"]
RANK: dict[Action, int] = {"log": 0, "redact": 1, "block": 2}
DEFAULT_MAX_PLANS = 4096
_GLOB_CHARS = frozenset("*?[")


def _globs(patterns: Sequence[str] | None) -> re.Pattern[str] | None:
    if patterns is None:
        return None
    return re.compile("|".join(fnmatch.translate(p) for p in patterns))


@dataclass(frozen=True, slots=True)
class Where:
    """A compiled `Selector`: `None` matches anything; a list matches when any of its values does."""

    servers: re.Pattern[str] | None = None
    tags: frozenset[str] | None = None
    tools: re.Pattern[str] | None = None
    groups: frozenset[str] | None = None

    @classmethod
    def of(cls, selector: Selector) -> Where:
        return cls(
            servers=_globs(selector.servers),
            tags=None if selector.tags is None else frozenset(selector.tags),
            tools=_globs(selector.tools),
            groups=None if selector.groups is None else frozenset(selector.groups),
        )

    def holds(self, server_id: str, tags: frozenset[str], name: str, groups: frozenset[str]) -> bool:
        return (
            (self.servers is None or self.servers.match(server_id) is not None)
            and (self.tags is None or not self.tags.isdisjoint(tags))
            and (self.tools is None or self.tools.match(name) is not None)
            and (self.groups is None or not self.groups.isdisjoint(groups))
        )


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    action: Action
    directions: frozenset[Direction]
    detectors: tuple[str, ...]  # families opened: built-in and declared detector names
    where: Where
    unless: Where | None = None

    def applies(
        self, server_id: str, tags: frozenset[str], name: str, direction: Direction, groups: frozenset[str]
    ) -> bool:
        if direction not in self.directions or not self.where.holds(server_id, tags, name, groups):
            return False
        return self.unless is None or not self.unless.holds(server_id, tags, name, groups)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one payload: `scanner` is None when no rule applies (nothing to scan)."""

    rules: tuple[CompiledRule, ...] = ()
    scanner: Scanner | None = None
    deciding: Mapping[str, CompiledRule] = field(default_factory=dict)  # detector name → the rule that acts

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(rule.id for rule in self.rules)


NOTHING = Plan()


class DlpRules:
    """The compiled rule set with its plan cache. Not shared between threads (each stage keeps its own)."""

    def __init__(
        self,
        rules: Sequence[CompiledRule],
        detectors: Mapping[str, Detector],
        tags_of: Mapping[str, frozenset[str]],
        max_cached: int = DEFAULT_MAX_PLANS,
    ) -> None:
        self.rules = tuple(rules)
        self._detectors = detectors  # in scan order: built-ins (credentials first), then declared ones
        self._tags_of = tags_of
        self._max = max_cached
        named: set[str] = set()
        for rule in self.rules:
            for where in (rule.where, rule.unless):
                if where is not None and where.groups is not None:
                    named |= where.groups
        self._groups = frozenset(named)
        self._plans: dict[tuple[str, str, Direction, frozenset[str]], Plan] = {}
        self._scanners: dict[frozenset[str], Scanner] = {}

    @property
    def active(self) -> bool:
        return bool(self.rules)

    def plan(self, server_id: str, name: str, direction: Direction, groups: frozenset[str]) -> Plan:
        """The rules covering a payload going `direction` between a caller in `groups` and `name` on `server_id`."""
        relevant = groups & self._groups if groups and self._groups else frozenset()
        key = (server_id, name, direction, relevant)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._build(server_id, name, direction, relevant)
            if len(self._plans) >= self._max:
                del self._plans[next(iter(self._plans))]  # oldest first: names are few, URIs may not be
            self._plans[key] = plan
        return plan

    def _build(self, server_id: str, name: str, direction: Direction, groups: frozenset[str]) -> Plan:
        tags = self._tags_of.get(server_id, frozenset())
        rules = tuple(r for r in self.rules if r.applies(server_id, tags, name, direction, groups))
        if not rules:
            return NOTHING
        deciding: dict[str, CompiledRule] = {}
        for rule in rules:
            for detector in rule.detectors:
                current = deciding.get(detector)
                if current is None or RANK[rule.action] > RANK[current.action]:
                    deciding[detector] = rule
        wanted = frozenset(deciding)
        scanner = self._scanners.get(wanted)
        if scanner is None:
            chosen = [d for n, d in self._detectors.items() if n in wanted]
            scanner = self._scanners[wanted] = Scanner(chosen)
        return Plan(rules, scanner, deciding)


def compile_rules(
    settings: DlpSettings, tags_of: Mapping[str, Iterable[str]], max_cached: int = DEFAULT_MAX_PLANS
) -> DlpRules:
    """Compile `settings` against the configured servers (`tags_of`: server id → its tags).

    Raises:
        ConfigError: a rule names a tag no server carries, or a server id (not a glob) that is not configured:
            such a rule could never match (a typo there would silently let values through).
    """
    tags = {server_id: frozenset(values) for server_id, values in tags_of.items()}
    if not settings.active:
        return DlpRules((), {}, tags, max_cached)
    detectors: dict[str, Detector] = {d.name: d for d in default_detectors()}
    detectors.update((d.name, d.build()) for d in settings.detectors)
    declared = tuple(d.name for d in settings.detectors)
    known_tags = frozenset().union(*tags.values())
    compiled = []
    for index, rule in enumerate(settings.rules):
        _check_destinations(f"dlp.rules[{index}]", rule, tags.keys(), known_tags)
        if rule.unless is not None:
            _check_destinations(f"dlp.rules[{index}].unless", rule.unless, tags.keys(), known_tags)
        compiled.append(
            CompiledRule(
                id=rule.id,
                action=rule.action,
                directions=frozenset(rule.directions),
                detectors=expand(rule.detectors, declared),
                where=Where.of(rule),
                unless=None if rule.unless is None else Where.of(rule.unless),
            )
        )
    return DlpRules(compiled, detectors, tags, max_cached)


def _check_destinations(key: str, selector: Selector, server_ids: Iterable[str], known_tags: frozenset[str]) -> None:
    ids = frozenset(server_ids)
    for tag in selector.tags or ():
        if tag not in known_tags:
            raise ConfigError(f"{key}.tags: no server carries tag {tag!r}")
    for server in selector.servers or ():
        if _GLOB_CHARS.isdisjoint(server) and server not in ids:
            raise ConfigError(f"{key}.servers: no server has id {server!r}")

"""The compiled policy and the request it judges: frozen values, built once, read on every call.

`compile_policy(settings)` turns the validated `policy:` section into a `CompiledPolicy`. Run-time edits build
a new one and swap the reference: a `CompiledPolicy` is never changed in place, which is what lets the decision
cache trust object identity (`portico.policy.cache`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from portico.netaddr import parse_ip
from portico.policy.conditions import (
    Condition,
    DeviceState,
    Facts,
    Glob,
    TimeCondition,
    build_conditions,
)
from portico.policy.settings import PolicyKind, PolicySettings, RuleSettings
from portico.types import Principal

Annotations = frozenset[tuple[str, bool | str]]
NO_ANNOTATIONS: Annotations = frozenset()
# MCP ToolAnnotations defaults: a tool that says nothing may be destructive and reaches the open world.
TOOL_HINT_DEFAULTS: Mapping[str, bool] = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": False,
    "openWorldHint": True,
}
_DEFAULT_TOOL_ANNOTATIONS: Annotations = frozenset(TOOL_HINT_DEFAULTS.items())
# The catalog's kinds, as a policy sees them: a resource template is a resource.
KIND_OF: Mapping[str, PolicyKind] = {
    "tools": "tools",
    "prompts": "prompts",
    "resources": "resources",
    "resourceTemplates": "resources",
}
MAX_INDEXED_SERVERS = 4096
DEFAULT_RULE = "policy.default"  # not a valid rule id, so it cannot be mistaken for one


def effective_annotations(kind: PolicyKind, raw: object) -> Annotations:
    """A tool's annotations as rules match them: the tool's own scalar values over the MCP defaults.

    A hint the tool leaves out takes its spec default (destructiveHint: true); a read-only tool is taken as
    not destructive unless it says otherwise. A hint that is not a boolean is ignored (the default stands), so
    a malformed `"destructiveHint": "no"` cannot slip past a forbid rule. Prompts and resources have none.
    """
    if kind != "tools":
        return NO_ANNOTATIONS
    if not isinstance(raw, dict) or not raw:
        return _DEFAULT_TOOL_ANNOTATIONS
    merged: dict[str, bool | str] = dict(TOOL_HINT_DEFAULTS)
    if raw.get("readOnlyHint") is True:
        merged["destructiveHint"] = False
    for key, value in raw.items():
        if key in TOOL_HINT_DEFAULTS:
            if isinstance(value, bool):
                merged[key] = value
        elif isinstance(key, str) and isinstance(value, bool | str):
            merged[key] = value
    return frozenset(merged.items())


def device_state_of(principal: Principal) -> DeviceState:
    """`none` without a device; else the registry's verdict the identity stage put in `claims["device_state"]`."""
    if principal.device_id is None:
        return "none"
    state = principal.claims.get("device_state")
    return state if state in ("enrolled", "revoked") else "unknown"


def country_of(principal: Principal) -> str | None:
    """ISO country code of the caller, from `claims["country"]` (filled by the identity stage)."""
    country = principal.claims.get("country")
    return country.upper() if isinstance(country, str) else None


@dataclass(frozen=True, slots=True)
class Request:
    """One question for the policy: may this principal use this tool / prompt / resource now?

    `name` is the upstream's own name (a resource's upstream URI). `annotations` are effective annotations
    (`effective_annotations`). `now` must be timezone-aware. `device_state` is what `device_state_of(principal)`
    says, unless a caller (`policy explain --device`) asks about another.

    Raises:
        ValueError: `now` is naive.
    """

    principal: Principal
    server_id: str
    kind: PolicyKind
    name: str
    now: datetime
    device_state: DeviceState
    annotations: Annotations = NO_ANNOTATIONS

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("Request.now must be timezone-aware")


def facts_of(principal: Principal, device_state: DeviceState, now: datetime) -> Facts:
    return Facts(
        subject=principal.subject,
        groups=principal.groups,
        mfa=principal.mfa,
        device=device_state,
        ip=parse_ip(principal.ip),
        country=country_of(principal),
        client_id=principal.client_id,
        now=now,
    )


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    effect: Literal["permit", "forbid"]
    description: str
    servers: Glob
    names: Glob
    kinds: frozenset[PolicyKind]
    annotations: Annotations
    when: tuple[Condition, ...]
    unless: tuple[Condition, ...]

    def covers(self, server_id: str, kind: PolicyKind, name: str) -> bool:
        """The rule's target, annotations aside, includes this server, kind and name."""
        return kind in self.kinds and self.servers.match(server_id) and self.names.match(name)

    def applies(self, facts: Facts) -> bool:
        """Every `when` condition holds and, for a forbid with `unless`, not every `unless` condition does."""
        for condition in self.when:
            if not condition.holds(facts):
                return False
        return not self.unless or not all(condition.holds(facts) for condition in self.unless)

    def target_miss(self, server_id: str, kind: PolicyKind, name: str, annotations: Annotations) -> str | None:
        """What part of the target does not match (None when all of it does)."""
        if kind not in self.kinds:
            return f"covers {', '.join(sorted(self.kinds))}, not {kind}"
        if not self.servers.match(server_id):
            return f"server is not {self.servers}"
        if not self.names.match(name):
            return f"name is not {self.names}"
        missing = self.annotations - annotations
        if missing:
            return f"tool lacks {show_annotations(missing)}"
        return None


def show_annotations(annotations: Annotations) -> str:
    return ", ".join(f"{key}={str(value).lower() if isinstance(value, bool) else value}"
                     for key, value in sorted(annotations))  # fmt: skip


RuleSplit = tuple[tuple["CompiledRule", ...], tuple["CompiledRule", ...]]  # (forbids, permits)


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """Rules in config order, and the same split by effect for the hot path (forbids are checked first).

    `for_server` narrows the split to the rules whose server globs match one server id, worked out once per
    server id and remembered: a derived index, so the policy stays a value (it is never consulted for equality).
    """

    default_permit: bool
    rules: tuple[CompiledRule, ...]
    forbids: tuple[CompiledRule, ...] = field(init=False)
    permits: tuple[CompiledRule, ...] = field(init=False)
    uses_time: bool = field(init=False)  # decisions then depend on the minute (the cache keys on it)
    _by_server: dict[str, RuleSplit] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "forbids", tuple(r for r in self.rules if r.effect == "forbid"))
        object.__setattr__(self, "permits", tuple(r for r in self.rules if r.effect == "permit"))
        timed = any(isinstance(c, TimeCondition) for r in self.rules for c in (*r.when, *r.unless))
        object.__setattr__(self, "uses_time", timed)
        object.__setattr__(self, "_by_server", {})

    def for_server(self, server_id: str) -> RuleSplit:
        """(forbids, permits) that can cover `server_id`."""
        split = self._by_server.get(server_id)
        if split is None:
            split = narrow(self.forbids, self.permits, server_id)
            if len(self._by_server) < MAX_INDEXED_SERVERS:
                self._by_server[server_id] = split
        return split


def narrow(forbids: tuple[CompiledRule, ...], permits: tuple[CompiledRule, ...], server_id: str) -> RuleSplit:
    return (tuple(r for r in forbids if r.servers.match(server_id)),
            tuple(r for r in permits if r.servers.match(server_id)))  # fmt: skip


def compile_policy(settings: PolicySettings) -> CompiledPolicy:
    """Precompute globs, networks and zones of a validated `policy:` section."""
    return CompiledPolicy(settings.default == "permit", tuple(_compile_rule(r, settings) for r in settings.rules))


def _compile_rule(rule: RuleSettings, settings: PolicySettings) -> CompiledRule:
    return CompiledRule(
        id=rule.id,
        effect=rule.effect,
        description=rule.description,
        servers=Glob.of(rule.servers),
        names=Glob.of(rule.tools),
        kinds=frozenset(rule.kinds),
        annotations=frozenset(rule.annotations.items()),
        when=build_conditions(rule, settings.networks),
        unless=build_conditions(rule.unless, settings.networks) if rule.unless is not None else (),
    )

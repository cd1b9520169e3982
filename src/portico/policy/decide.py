"""The pure core: `decide` one request, `explain` it rule by rule, and `visibility` for filtering a listing.

Semantics (the same as Cedar's): a forbid rule that matches beats every permit; with no matching permit the
answer is no (implicit deny) unless the operator chose `default: permit`. A rule matches when its target covers
the server, kind and name (and, if it names annotations, the tool has them) and all its conditions hold (and,
for a forbid with `unless`, not all of those hold). Rule order never matters.

Every decision names the rule that made it (`policy.default` when none did) and says why in words an operator
can act on. Names in reasons come from the catalog and are clipped; no raw client input goes into them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from portico.policy.conditions import Facts
from portico.policy.model import (
    DEFAULT_RULE,
    Annotations,
    CompiledPolicy,
    CompiledRule,
    Request,
    RuleSplit,
    effective_annotations,
    facts_of,
    narrow,
    show_annotations,
)
from portico.policy.settings import PolicyKind
from portico.types import Decision

_VERB: dict[PolicyKind, str] = {"tools": "call", "prompts": "get", "resources": "read"}
_NOUN: dict[PolicyKind, str] = {"tools": "tool", "prompts": "prompt", "resources": "resource"}

# (server id, kind, upstream name, the entry's raw `annotations`) -> may the caller see it?
Visibility = Callable[[str, PolicyKind, str, object], bool]


def decide(policy: CompiledPolicy, request: Request) -> Decision:
    """Permit or deny one request, with the deciding rule and the reason."""
    facts = facts_of(request.principal, request.device_state, request.now)
    server, kind, name, annotations = request.server_id, request.kind, request.name, request.annotations
    forbids, permits = policy.for_server(server)
    for rule in forbids:
        if _targets(rule, server, kind, name, annotations) and rule.applies(facts):
            return Decision(False, rule.id, _forbidden(rule, facts, request))
    for rule in permits:
        if _targets(rule, server, kind, name, annotations) and rule.applies(facts):
            return Decision(True, rule.id, _permitted(rule))
    if policy.default_permit:
        return Decision(True, DEFAULT_RULE, f"no rule forbids {_who(request)}, and policy.default is permit")
    return Decision(False, DEFAULT_RULE, _implicit_deny(policy, facts, request))


def visibility(
    policy: CompiledPolicy,
    facts: Facts,
    annotations_of: Callable[[PolicyKind, object], Annotations] = effective_annotations,
) -> Visibility:
    """What one caller may see, for filtering a whole listing: the caller's conditions are judged once here,
    so each entry costs only the target match (annotations worked out, by `annotations_of`, only when a rule
    needs them).

    Agrees with `decide` for every entry (the tests check it).
    """
    forbids = tuple(rule for rule in policy.forbids if rule.applies(facts))
    permits = tuple(rule for rule in policy.permits if rule.applies(facts))
    default = policy.default_permit
    if not permits and not default:
        return _nothing
    by_server: dict[str, RuleSplit] = {}

    def visible(server: str, kind: PolicyKind, name: str, raw_annotations: object) -> bool:
        split = by_server.get(server)
        if split is None:
            split = by_server[server] = narrow(forbids, permits, server)
        annotations: Annotations | None = None
        for group, answer in ((split[0], False), (split[1], True)):
            for rule in group:
                if not rule.covers(server, kind, name):
                    continue
                if rule.annotations:
                    if annotations is None:
                        annotations = annotations_of(kind, raw_annotations)
                    if not rule.annotations <= annotations:
                        continue
                return answer
        return default

    return visible


def _nothing(server: str, kind: PolicyKind, name: str, raw_annotations: object) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """How one rule fared against a request. Conditions are judged even when the target did not match."""

    rule: str
    effect: str
    description: str
    target_miss: str | None  # None: the target matched; else what did not
    failed: tuple[str, ...]  # the conditions that do not hold (what each wants)
    exempt: bool  # a forbid whose `unless` conditions all hold
    unless_missing: tuple[str, ...]  # the `unless` conditions that do not hold
    applies: bool  # the target matched and the rule's conditions hold (and it is not exempt)


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    checks: tuple[RuleCheck, ...]  # every rule, in config order


def explain(policy: CompiledPolicy, request: Request) -> Explanation:
    """The decision, and for every rule whether its target matched and which conditions failed."""
    facts = facts_of(request.principal, request.device_state, request.now)
    checks = []
    for rule in policy.rules:
        miss = rule.target_miss(request.server_id, request.kind, request.name, request.annotations)
        failed = tuple(c.want for c in rule.when if not c.holds(facts))
        missing = tuple(c.want for c in rule.unless if not c.holds(facts))
        exempt = bool(rule.unless) and not missing
        applies = miss is None and not failed and not exempt
        checks.append(RuleCheck(rule.id, rule.effect, rule.description, miss, failed, exempt, missing, applies))
    return Explanation(decide(policy, request), tuple(checks))


def _targets(rule: CompiledRule, server: str, kind: PolicyKind, name: str, annotations: Annotations) -> bool:
    return rule.covers(server, kind, name) and (not rule.annotations or rule.annotations <= annotations)


def _forbidden(rule: CompiledRule, facts: Facts, request: Request) -> str:
    text = f"forbidden by rule {rule.id}: {_NOUN[request.kind]} {_what(request)}"
    if rule.annotations:
        text += f" has {show_annotations(rule.annotations)}"
    if rule.when:
        text += f"; applies with {' and '.join(c.want for c in rule.when)}"
    if rule.unless:
        missing = ", ".join(c.want for c in rule.unless if not c.holds(facts))
        text += f"; exempt only with {' and '.join(c.want for c in rule.unless)} (missing: {missing})"
    return text


def _permitted(rule: CompiledRule) -> str:
    if not rule.when:
        return f"permitted by rule {rule.id}"
    return f"permitted by rule {rule.id} (met: {', '.join(c.want for c in rule.when)})"


def _implicit_deny(policy: CompiledPolicy, facts: Facts, request: Request) -> str:
    text = f"no rule permits {_who(request)}"
    # the nearest miss: a permit for this target whose conditions failed
    for rule in policy.for_server(request.server_id)[1]:
        if _targets(rule, request.server_id, request.kind, request.name, request.annotations):
            failed = [c.want for c in rule.when if not c.holds(facts)]
            return f"{text} (rule {rule.id} requires {' and '.join(failed)})"
    return text


def _who(request: Request) -> str:
    return f"{clip(request.principal.subject)} to {_VERB[request.kind]} {_what(request)}"


def _what(request: Request) -> str:
    return f"{request.server_id}/{clip(request.name)}"


def clip(text: str, limit: int = 80) -> str:
    """A name in a reason: cut short and stripped of control characters (it may reach a client's screen)."""
    if len(text) <= limit and text.isprintable():
        return text
    clean = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    return clean + ("…" if len(text) > limit else "")

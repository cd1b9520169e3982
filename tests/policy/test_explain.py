"""`explain`: every rule, whether its target matched, which conditions failed, and the final decision."""

from __future__ import annotations

from typing import Any

import pytest

from portico.policy import RuleCheck, decide, explain
from tests.policy.support import ask, compiled, who

POLICY = compiled(
    {"id": "eng-github", "effect": "permit", "description": "engineers", "servers": ["github"], "groups": ["eng"],
     "mfa": True},
    {"id": "jira", "effect": "permit", "servers": ["jira"]},
    {"id": "readers", "effect": "permit", "kinds": ["prompts"]},
    {"id": "no-destructive", "effect": "forbid", "annotations": {"destructiveHint": True},
     "unless": {"device": "enrolled", "networks": ["office"]}},
    {"id": "no-deletes", "effect": "forbid", "tools": ["delete_*"], "groups": ["contractors"]},
)  # fmt: skip


def check(rule: str, effect: str = "permit", **fields: Any) -> RuleCheck:
    values: dict[str, Any] = {"description": "", "target_miss": None, "failed": (), "exempt": False,
                              "unless_missing": (), "applies": False, **fields}  # fmt: skip
    return RuleCheck(rule, effect, values.pop("description"), **values)


def test_every_rule_is_explained_in_config_order() -> None:
    request = ask(who("alice", "eng"), name="delete_repo", annotations={"destructiveHint": True})
    explanation = explain(POLICY, request)
    assert explanation.decision == decide(POLICY, request)
    assert explanation.decision.rule == "no-destructive"
    assert explanation.checks == (
        check("eng-github", description="engineers", failed=("MFA",)),
        check("jira", target_miss="server is not jira"),
        check("readers", target_miss="covers prompts, not tools"),
        check("no-destructive", "forbid", unless_missing=("an enrolled device", "network office"), applies=True),
        check("no-deletes", "forbid", failed=("group contractors",)),
    )


@pytest.mark.parametrize(
    ("request_", "rule", "expected"),
    [
        pytest.param(
            ask(who(device="enrolled", ip="10.20.0.1"), annotations={"destructiveHint": True}),
            "no-destructive",
            check("no-destructive", "forbid", exempt=True),
            id="an_exempt_forbid_does_not_apply",
        ),
        pytest.param(
            ask(who(), annotations={"readOnlyHint": True}),
            "no-destructive",
            check(
                "no-destructive",
                "forbid",
                target_miss="tool lacks destructiveHint=true",
                unless_missing=("an enrolled device", "network office"),
            ),
            id="a_missing_annotation_is_a_target_miss",
        ),
        pytest.param(
            ask(who("bob", "eng", mfa=True), server="gitlab", name="x"),
            "eng-github",
            check("eng-github", description="engineers", target_miss="server is not github"),
            id="conditions_are_judged_even_when_the_target_misses",
        ),
        pytest.param(
            ask(who("bob", "eng", mfa=True), kind="prompts"),
            "eng-github",
            check("eng-github", description="engineers", applies=True),
            id="a_permit_that_applies_but_does_not_decide",
        ),
        pytest.param(
            ask(who("carl", "contractors"), name="delete_x", annotations={"readOnlyHint": True}),
            "no-deletes",
            check("no-deletes", "forbid", applies=True),
            id="a_forbid_whose_conditions_hold",
        ),
    ],
)
def test_one_rule_explained(request_: Any, rule: str, expected: RuleCheck) -> None:
    [found] = [c for c in explain(POLICY, request_).checks if c.rule == rule]
    assert found == expected


def test_an_empty_policy_explains_the_implicit_deny() -> None:
    explanation = explain(compiled(), ask(who()))
    assert explanation.checks == ()
    assert (explanation.decision.allowed, explanation.decision.rule) == (False, "policy.default")

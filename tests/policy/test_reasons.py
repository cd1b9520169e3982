"""Every decision says why, in words an operator can act on: the reasons, as a table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from portico.policy import Request, decide
from tests.policy.support import ask, compiled, who

ENG = {"id": "eng-github", "effect": "permit", "servers": ["github"], "groups": ["eng"], "mfa": True}
NO_DESTRUCTIVE = {
    "id": "no-destructive",
    "effect": "forbid",
    "annotations": {"destructiveHint": True},
    "unless": {"networks": ["office"], "device": "enrolled"},
}
SATURDAY = datetime(2026, 3, 7, 10, 30, tzinfo=UTC)
HOURS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00", "tz": "Europe/Berlin"}


@pytest.mark.parametrize(
    ("rules", "request_", "reason"),
    [
        pytest.param(
            [ENG, NO_DESTRUCTIVE],
            ask(who("alice", "eng", mfa=True, ip="10.20.0.1"), name="delete_repo", annotations={}),
            "forbidden by rule no-destructive: tool github/delete_repo has destructiveHint=true; exempt only with "
            "an enrolled device and network office (missing: an enrolled device)",
            id="forbid_names_the_annotation_and_what_would_exempt",
        ),
        pytest.param(
            [{"id": "no-guest", "effect": "forbid", "networks": ["guest"], "kinds": ["prompts"]}, ENG],
            ask(who(ip="192.168.77.1"), name="summarize", kind="prompts"),
            "forbidden by rule no-guest: prompt github/summarize; applies with network guest",
            id="forbid_names_the_conditions_it_applies_with",
        ),
        pytest.param(
            [ENG],
            ask(who("alice", "eng", mfa=True), annotations={"readOnlyHint": True}),
            "permitted by rule eng-github (met: group eng, MFA)",
            id="permit_names_the_conditions_met",
        ),
        pytest.param(
            [{"id": "open", "effect": "permit"}],
            ask(who()),
            "permitted by rule open",
            id="unconditional_permit_is_named_alone",
        ),
        pytest.param(
            [ENG],
            ask(who("alice", "eng"), name="delete_repo"),
            "no rule permits alice to call github/delete_repo (rule eng-github requires MFA)",
            id="implicit_deny_names_the_nearest_permit_and_what_it_lacks",
        ),
        pytest.param(
            [ENG],
            ask(who("bob"), server="jira", name="create_issue"),
            "no rule permits bob to call jira/create_issue",
            id="implicit_deny_without_a_near_miss",
        ),
        pytest.param(
            [{"id": "hours", "effect": "permit", "kinds": ["resources"], "time": HOURS}],
            ask(who("carol"), server="files", name="file:///a.txt", kind="resources", now=SATURDAY),
            "no rule permits carol to read files/file:///a.txt (rule hours requires time mon-fri 09:00-17:00 "
            "Europe/Berlin)",
            id="implicit_deny_names_the_time_window",
        ),
        pytest.param(
            [{"id": "weekend", "effect": "permit", "kinds": ["prompts"], "time": {"days": ["sat", "sun"]}}],
            ask(who("dave"), kind="prompts"),
            "no rule permits dave to get github/search (rule weekend requires time sat,sun 00:00-24:00 UTC)",
            id="prompts_are_got_and_two_days_are_listed",
        ),
        pytest.param(
            [{"id": "x", "effect": "permit", "servers": ["jira"]}],
            ask(who("mallory\x1b[31m"), name="a" * 200),
            f"no rule permits mallory?[31m to call github/{'a' * 80}…",
            id="names_are_clipped_and_control_characters_replaced",
        ),
    ],
)
def test_reason_table(rules: list[dict[str, Any]], request_: Request, reason: str) -> None:
    assert decide(compiled(*rules), request_).reason == reason


def test_default_permit_says_so() -> None:
    decision = decide(compiled(default="permit"), ask(who("erin")))
    assert decision.reason == "no rule forbids erin to call github/search, and policy.default is permit"

"""The decision cache: it answers as `decide` would, forgets a replaced policy, and stays bounded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from portico.policy import AnnotationMemo, DecisionCache, Request, decide
from portico.policy.model import effective_annotations
from tests.policy.support import ask, compiled, who

# A policy in which every fact the key holds changes some decision.
SENSITIVE = compiled(
    {"id": "eng", "effect": "permit", "servers": ["github"], "groups": ["eng"], "mfa": True, "kinds": ["tools"]},
    {"id": "office", "effect": "permit", "servers": ["jira"], "networks": ["office"], "countries": ["DE"]},
    {"id": "device", "effect": "permit", "servers": ["hr"], "device": "enrolled", "clients": ["claude-*"]},
    {"id": "users", "effect": "permit", "servers": ["wiki"], "users": ["alice"]},
    {"id": "no-delete", "effect": "forbid", "tools": ["delete_*"]},
    {"id": "no-destructive", "effect": "forbid", "servers": ["github"], "annotations": {"destructiveHint": True}},
)
BASE_CALLER: dict[str, Any] = {
    "subject": "alice",
    "groups": ("eng",),
    "mfa": True,
    "device": "enrolled",
    "ip": "10.20.0.1",
    "country": "DE",
    "client_id": "claude-x",
}


def req(
    server: str = "github", name: str = "search", kind: Any = "tools", annotations: Any = None, **caller: Any
) -> Request:
    fields = {**BASE_CALLER, **caller}
    principal = who(fields.pop("subject"), *fields.pop("groups"), **fields)
    return ask(principal, server, name, kind=kind, annotations=annotations or {"readOnlyHint": True})


BASE = req()


@pytest.mark.parametrize(
    ("first", "then"),
    [
        pytest.param(req(), req(groups=("sales",)), id="groups"),
        pytest.param(req(), req(mfa=False), id="mfa"),
        pytest.param(req("hr"), req("hr", device="revoked"), id="device_state"),
        pytest.param(req("jira"), req("jira", ip="8.8.8.8"), id="ip"),
        pytest.param(req("jira"), req("jira", country="FR"), id="country"),
        pytest.param(req("hr"), req("hr", client_id="cursor"), id="client"),
        pytest.param(req("wiki"), req("wiki", subject="bob"), id="subject"),
        pytest.param(req(), req("gitlab"), id="server"),
        pytest.param(req(), req(kind="prompts"), id="kind"),
        pytest.param(req(), req(name="delete_repo"), id="name"),
        pytest.param(req(), req(annotations={"destructiveHint": True}), id="annotations"),
    ],
)
def test_a_cached_decision_is_never_reused_for_a_different_fact(first: Request, then: Request) -> None:
    cache = DecisionCache()
    earlier = cache.decide(SENSITIVE, first)
    later = cache.decide(SENSITIVE, then)
    assert (earlier, later) == (decide(SENSITIVE, first), decide(SENSITIVE, then))
    assert earlier.allowed != later.allowed
    assert cache.hits == 0


def test_the_same_question_is_answered_from_the_cache() -> None:
    cache = DecisionCache()
    first = cache.decide(SENSITIVE, BASE)
    again = cache.decide(SENSITIVE, replace(BASE, now=datetime(2027, 1, 1, tzinfo=UTC)))
    assert again is first
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


def test_time_window_decisions_change_at_the_minute() -> None:
    policy = compiled({"id": "hours", "effect": "permit", "time": {"start": "09:00", "end": "17:00"}})
    cache = DecisionCache()
    before = cache.decide(policy, ask(who(), now=datetime(2026, 3, 4, 16, 59, 59, tzinfo=UTC)))
    after = cache.decide(policy, ask(who(), now=datetime(2026, 3, 4, 17, 0, 0, tzinfo=UTC)))
    assert (before.allowed, after.allowed) == (True, False)
    assert cache.decide(policy, ask(who(), now=datetime(2026, 3, 4, 16, 59, 1, tzinfo=UTC))) is before


def test_a_replaced_policy_empties_the_cache() -> None:
    cache = DecisionCache()
    open_policy = compiled({"id": "open", "effect": "permit"})
    assert cache.decide(open_policy, BASE).allowed
    closed = compiled()
    assert not cache.decide(closed, BASE).allowed
    assert (len(cache), cache.hits) == (1, 0)
    assert cache.decide(open_policy, BASE).allowed  # the same object again: a new entry, not a stale one


def test_the_cache_keeps_only_the_most_recently_used() -> None:
    cache = DecisionCache(max_entries=2)
    a, b, c = (replace(BASE, name=name) for name in ("a", "b", "c"))
    cache.decide(SENSITIVE, a)
    cache.decide(SENSITIVE, b)
    cache.decide(SENSITIVE, a)  # a is now the most recent
    cache.decide(SENSITIVE, c)  # evicts b
    assert len(cache) == 2
    hits = cache.hits
    cache.decide(SENSITIVE, a)
    assert cache.hits == hits + 1
    cache.decide(SENSITIVE, b)
    assert cache.hits == hits + 1


def test_a_cache_must_hold_something() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        DecisionCache(max_entries=0)


def test_annotations_are_remembered_per_definition_object() -> None:
    memo = AnnotationMemo(max_entries=2)
    read_only, destructive = {"readOnlyHint": True}, {"destructiveHint": True}
    assert memo("tools", read_only) is memo("tools", read_only)
    assert memo("tools", destructive) == effective_annotations("tools", destructive)
    assert memo("tools", {"readOnlyHint": True}) == effective_annotations("tools", read_only)  # third: memo resets
    assert memo("prompts", read_only) == frozenset()
    assert memo("tools", None) == effective_annotations("tools", None)

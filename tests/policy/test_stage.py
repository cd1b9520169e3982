"""`PolicyStage` in front of a small real terminal (standing in for the catalog and the upstream): what it lets
through, what it refuses, what it notes, and what it leaves visible in listings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from portico.catalog.catalog import Entry
from portico.errors import DENIED, DeniedError
from portico.pipeline import ErrorStage, compose
from portico.policy import CompiledPolicy
from portico.policy.stage import PolicyStage
from portico.types import Decision, Era, Exchange, Outcome, Principal, Reply
from tests.policy.support import compiled, tool, who

pytestmark = pytest.mark.anyio

POLICY = compiled(
    {"id": "eng-github", "effect": "permit", "servers": ["github"], "groups": ["eng"], "kinds": ["tools"]},
    {"id": "docs", "effect": "permit", "servers": ["files"], "kinds": ["resources"], "tools": ["file:///docs/*"]},
    {"id": "prompts", "effect": "permit", "servers": ["github"], "kinds": ["prompts"], "tools": ["summarize"]},
    {"id": "no-destructive", "effect": "forbid", "annotations": {"destructiveHint": True}, "unless": {"mfa": True}},
)
ENG = who("alice", "eng")
SEARCH = tool("github", "search", {"readOnlyHint": True})
DELETE = tool("github", "delete_repo", {"destructiveHint": True})
CATALOG = [
    SEARCH,
    DELETE,
    tool("github", "undeclared"),
    tool("jira", "create_issue", {"readOnlyHint": False, "destructiveHint": False}),
    tool("github", "summarize", kind="prompts"),
    tool("github", "release_notes", kind="prompts"),
    tool("files", "file:///docs/a.md", kind="resources"),
    tool("files", "file:///secret/b.txt", kind="resources"),
    tool("files", "file:///docs/{name}", kind="resourceTemplates"),
    tool("files", "file:///secret/{name}", kind="resourceTemplates"),
]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Upstream:
    """The terminal: records what reached it and answers listings the way `CatalogStage` filters them."""

    def __init__(self) -> None:
        self.reached: list[str] = []

    async def __call__(self, exchange: Exchange) -> Reply:
        self.reached.append(exchange.method)
        if exchange.method.endswith("/list"):
            kind = {"tools/list": "tools", "prompts/list": "prompts", "resources/list": "resources"}.get(
                exchange.method, "resourceTemplates"
            )
            predicates = exchange.notes.get("visible", [])
            shown = [e.name for e in CATALOG if e.kind == kind and all(p(e) for p in predicates)]
            return Reply.ok({kind: shown})
        return Reply.ok({"content": []})


def exchange(method: str, principal: Principal = ENG, params: dict[str, Any] | None = None, **route: Any) -> Exchange:
    """An exchange as `RouteStage` leaves it: `entry` for tools and prompts, server and target for the rest."""
    made = Exchange(method, params or {}, 1, principal, Era.MODERN, "2026-07-28")
    entry = route.pop("entry", None)
    if isinstance(entry, Entry):
        made.server_id, made.target = entry.server_id, entry.name
        made.notes["entry"] = entry
    made.server_id = route.pop("server_id", made.server_id)
    made.target = route.pop("target", made.target)
    return made


def stage(policy: CompiledPolicy = POLICY, clock: Clock | None = None) -> PolicyStage:
    return PolicyStage(lambda: policy, clock or Clock(datetime(2026, 3, 4, 10, 30, tzinfo=UTC)))


async def test_a_permitted_tool_call_reaches_the_upstream_with_its_decision_noted() -> None:
    upstream = Upstream()
    call = exchange("tools/call", entry=SEARCH)
    reply = await stage()(call, upstream)
    assert reply.result == {"content": []}
    assert upstream.reached == ["tools/call"]
    assert call.notes["decision"] == Decision(True, "eng-github", "permitted by rule eng-github (met: group eng)")


@pytest.mark.requirement("policy:denied-call-never-reaches-upstream")
async def test_a_denied_tool_call_never_reaches_the_upstream() -> None:
    upstream = Upstream()
    call = exchange("tools/call", entry=DELETE)
    with pytest.raises(DeniedError) as denied:
        await stage()(call, upstream)
    assert upstream.reached == []
    assert denied.value.code == DENIED
    decision = call.notes["decision"]
    assert (decision.allowed, decision.rule) == (False, "no-destructive")
    assert denied.value.public == decision.reason


async def test_a_denial_becomes_a_denied_reply_with_the_reason() -> None:
    upstream = Upstream()
    chain = compose([ErrorStage(), stage()], upstream)
    call = exchange("tools/call", who("bob"), entry=SEARCH)
    reply = await chain(call)
    assert reply.outcome is Outcome.DENIED
    assert reply.error is not None
    assert (reply.error.code, reply.error.message) == (DENIED, call.notes["decision"].reason)
    assert reply.error.message == "no rule permits bob to call github/search (rule eng-github requires group eng)"


@pytest.mark.parametrize(
    ("call", "allowed", "rule"),
    [
        pytest.param(exchange("tools/call", who("root", mfa=True), entry=DELETE), False, "policy.default",
                     id="mfa_exempts_from_the_forbid_but_nothing_permits"),
        pytest.param(exchange("tools/call", who("al", "eng", mfa=True), entry=DELETE), True, "eng-github",
                     id="mfa_exempts_from_the_forbid_and_the_group_permits"),
        pytest.param(exchange("tools/call", entry=tool("github", "undeclared")), False, "no-destructive",
                     id="a_tool_without_annotations_counts_as_destructive"),
        pytest.param(exchange("prompts/get", entry=tool("github", "summarize", kind="prompts")), True, "prompts",
                     id="prompt_get_is_judged_on_the_prompt"),
        pytest.param(exchange("prompts/get", entry=tool("github", "release_notes", kind="prompts")), False,
                     "policy.default", id="prompt_get_of_an_unpermitted_prompt_is_denied"),
        pytest.param(exchange("resources/read", server_id="files", target="file:///docs/a.md"), True, "docs",
                     id="resource_read_is_judged_on_server_and_upstream_uri"),
        pytest.param(exchange("resources/read", server_id="files", target="file:///secret/b.txt"), False,
                     "policy.default", id="resource_read_outside_the_glob_is_denied"),
        pytest.param(exchange("resources/subscribe", server_id="files", target="file:///secret/b.txt"), False,
                     "policy.default", id="resource_subscribe_is_judged_like_a_read"),
        pytest.param(exchange("completion/complete", params={"ref": {"type": "ref/prompt", "name": "summarize"}},
                              server_id="github"), True, "prompts", id="completion_of_a_permitted_prompt"),
        pytest.param(exchange("completion/complete", params={"ref": {"type": "ref/resource", "uri": "file:///x"}},
                              server_id="files"), False, "policy.default", id="completion_of_an_unpermitted_resource"),
        pytest.param(exchange("tools/call"), False, "policy.unrouted", id="a_call_without_a_routed_entry_fails_closed"),
        pytest.param(exchange("resources/read", server_id="files"), False, "policy.unrouted",
                     id="a_read_without_a_routed_uri_fails_closed"),
        pytest.param(exchange("completion/complete", params={"ref": {"type": "ref/other"}}, server_id="github"), False,
                     "policy.unrouted", id="an_unknown_completion_reference_fails_closed"),
    ],
)  # fmt: skip
async def test_guarded_methods_are_judged(call: Exchange, allowed: bool, rule: str) -> None:
    upstream = Upstream()
    if allowed:
        await stage()(call, upstream)
    else:
        with pytest.raises(DeniedError):
            await stage()(call, upstream)
    assert (call.notes["decision"].allowed, call.notes["decision"].rule) == (allowed, rule)
    assert upstream.reached == ([call.method] if allowed else [])


@pytest.mark.parametrize(
    ("method", "shown"),
    [
        ("tools/list", ["search"]),
        ("prompts/list", ["summarize"]),
        ("resources/list", ["file:///docs/a.md"]),
        ("resources/templates/list", ["file:///docs/{name}"]),
    ],
)
@pytest.mark.requirement("policy:listing-shows-only-permitted")
async def test_listings_show_only_what_the_caller_may_use(method: str, shown: list[str]) -> None:
    listing = exchange(method)
    reply = await stage()(listing, Upstream())
    assert reply.result is not None
    assert next(iter(reply.result.values())) == shown
    assert "decision" not in listing.notes


async def test_what_a_listing_shows_is_exactly_what_may_be_called() -> None:
    the_stage = stage()
    for principal in (ENG, who("bob"), who("root", "eng", mfa=True)):
        listed = (await the_stage(exchange("tools/list", principal), Upstream())).result
        assert listed is not None
        for entry in [e for e in CATALOG if e.kind == "tools"]:
            decision = the_stage.decide(exchange("tools/call", principal, entry=entry))
            assert decision.allowed == (entry.name in listed["tools"]), (principal.subject, entry.name)


@pytest.mark.parametrize(
    "method", ["initialize", "ping", "server/discover", "logging/setLevel", "resources/unsubscribe"]
)
async def test_other_methods_pass_unjudged(method: str) -> None:
    upstream = Upstream()
    passing = exchange(method, who("nobody"))
    await stage(compiled())(passing, upstream)
    assert upstream.reached == [method]
    assert "decision" not in passing.notes
    assert "visible" not in passing.notes


async def test_a_replaced_policy_applies_to_the_next_call() -> None:
    current = [compiled({"id": "open", "effect": "permit"})]
    the_stage = PolicyStage(lambda: current[0], Clock(datetime(2026, 3, 4, tzinfo=UTC)))
    await the_stage(exchange("tools/call", entry=SEARCH), Upstream())
    current[0] = compiled()  # a run-time edit swaps the whole compiled policy
    with pytest.raises(DeniedError):
        await the_stage(exchange("tools/call", entry=SEARCH), Upstream())


async def test_time_windows_follow_the_injected_clock() -> None:
    clock = Clock(datetime(2026, 3, 4, 15, 59, tzinfo=UTC))  # 16:59 in Berlin
    hours = {"days": ["wed"], "start": "09:00", "end": "17:00", "tz": "Europe/Berlin"}
    the_stage = stage(compiled({"id": "hours", "effect": "permit", "time": hours}), clock)
    await the_stage(exchange("tools/call", entry=SEARCH), Upstream())
    await the_stage(exchange("tools/call", entry=SEARCH), Upstream())  # same minute: from the cache
    assert the_stage.cache.hits == 1
    clock.now += timedelta(minutes=1)
    with pytest.raises(DeniedError):
        await the_stage(exchange("tools/call", entry=SEARCH), Upstream())
    listed = (await the_stage(exchange("tools/list"), Upstream())).result
    assert listed == {"tools": []}

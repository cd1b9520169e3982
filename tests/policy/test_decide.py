"""`decide`, the pure core, as one table: each row is a policy, a request, and the expected decision and rule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from portico.policy import Request, decide
from tests.policy.support import ask, compiled, who

DEFAULT = "policy.default"
ENG_GITHUB = {"id": "eng-github", "effect": "permit", "servers": ["github"], "groups": ["eng"]}
EVERYONE = {"id": "everyone", "effect": "permit"}
BUSINESS_HOURS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00", "tz": "Europe/Berlin"}
NO_DESTRUCTIVE = {"id": "no-destructive", "effect": "forbid", "annotations": {"destructiveHint": True}}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def permit(**conditions: Any) -> dict[str, Any]:
    return {"id": "p", "effect": "permit", **conditions}


def row(sentence: str, rules: list[dict[str, Any]], request: Request, allowed: bool, rule: str, **kw: Any) -> Any:
    return pytest.param(rules, request, allowed, rule, kw.get("default", "deny"), id=sentence)


CASES = [
    # MFA
    row("mfa_required_and_present_permits", [permit(mfa=True)], ask(who(mfa=True)), True, "p"),
    row("mfa_required_and_absent_denies", [permit(mfa=True)], ask(who()), False, DEFAULT),
    # devices
    row("enrolled_device_permits", [permit(device="enrolled")], ask(who(device="enrolled")), True, "p"),
    row("revoked_device_never_counts", [permit(device="enrolled")], ask(who(device="revoked")), False, DEFAULT),
    row("no_device_denies", [permit(device="enrolled")], ask(who()), False, DEFAULT),
    row("device_without_registry_verdict_denies", [permit(device="enrolled")], ask(who(device="unknown")), False,
        DEFAULT),
    row("device_id_alone_is_not_enrolment", [permit(device="enrolled")], ask(who(device_id="d1")), False, DEFAULT),
    # networks
    row("ip_inside_named_network_permits", [permit(networks=["office"])], ask(who(ip="10.20.3.4")), True, "p"),
    row("ip_outside_named_network_denies", [permit(networks=["office"])], ask(who(ip="10.21.0.1")), False, DEFAULT),
    row("missing_ip_denies_a_network_rule", [permit(networks=["office"])], ask(who()), False, DEFAULT),
    row("malformed_ip_denies_a_network_rule", [permit(networks=["office"])], ask(who(ip="10.20.1.1; drop")), False,
        DEFAULT),
    row("ipv6_inside_named_network_permits", [permit(networks=["office"])], ask(who(ip="2001:db8:20::7")), True, "p"),
    row("ipv4_mapped_ipv6_counts_as_ipv4", [permit(networks=["office"])], ask(who(ip="::ffff:10.20.0.9")), True, "p"),
    row("any_listed_network_suffices", [permit(networks=["office", "vpn"])], ask(who(ip="172.16.5.5")), True, "p"),
    row("forbid_on_guest_network_beats_permit",
        [EVERYONE, {"id": "no-guest", "effect": "forbid", "networks": ["guest"]}], ask(who(ip="192.168.77.3")), False,
        "no-guest"),
    row("forbid_on_guest_network_spares_others",
        [EVERYONE, {"id": "no-guest", "effect": "forbid", "networks": ["guest"]}], ask(who(ip="10.20.0.1")), True,
        "everyone"),
    # countries
    row("listed_country_permits", [permit(countries=["DE", "AT"])], ask(who(country="at")), True, "p"),
    row("other_country_denies", [permit(countries=["DE"])], ask(who(country="US")), False, DEFAULT),
    row("unknown_country_denies", [permit(countries=["DE"])], ask(who()), False, DEFAULT),
    # time windows (Berlin is UTC+1 in winter, UTC+2 from 2026-03-29)
    row("inside_business_hours_permits", [permit(time=BUSINESS_HOURS)], ask(who()), True, "p"),
    row("saturday_is_outside_the_window", [permit(time=BUSINESS_HOURS)], ask(who(), now=at("2026-03-07T10:30")),
        False, DEFAULT),
    row("window_start_is_inclusive", [permit(time=BUSINESS_HOURS)], ask(who(), now=at("2026-03-04T08:00")), True, "p"),
    row("window_end_is_exclusive", [permit(time=BUSINESS_HOURS)], ask(who(), now=at("2026-03-04T16:00")), False,
        DEFAULT),
    row("last_minute_of_window_permits", [permit(time=BUSINESS_HOURS)], ask(who(), now=at("2026-03-04T15:59")), True,
        "p"),
    row("window_follows_summer_time", [permit(time=BUSINESS_HOURS)], ask(who(), now=at("2026-07-01T07:30")), True,
        "p"),
    row("same_utc_time_in_winter_is_too_early", [permit(time=BUSINESS_HOURS)], ask(who(), now=at("2026-01-07T07:30")),
        False, DEFAULT),
    row("overnight_window_continues_into_next_day",
        [permit(time={"days": ["fri"], "start": "22:00", "end": "06:00"})], ask(who(), now=at("2026-03-07T03:00")),
        True, "p"),
    row("overnight_window_starts_on_its_listed_day",
        [permit(time={"days": ["fri"], "start": "22:00", "end": "06:00"})], ask(who(), now=at("2026-03-06T03:00")),
        False, DEFAULT),
    row("window_defaults_to_utc", [permit(time={"start": "10:00", "end": "11:00"})], ask(who()), True, "p"),
    # forbid over permit, implicit deny, default permit
    row("forbid_overrides_a_matching_permit",
        [ENG_GITHUB, {"id": "no-deletes", "effect": "forbid", "tools": ["delete_*"]}],
        ask(who("alice", "eng"), name="delete_repo"), False, "no-deletes"),
    row("forbid_overrides_whatever_the_rule_order",
        [{"id": "no-deletes", "effect": "forbid", "tools": ["delete_*"]}, ENG_GITHUB],
        ask(who("alice", "eng"), name="delete_repo"), False, "no-deletes"),
    row("forbid_elsewhere_leaves_the_permit",
        [ENG_GITHUB, {"id": "no-deletes", "effect": "forbid", "tools": ["delete_*"]}],
        ask(who("alice", "eng"), name="search"), True, "eng-github"),
    row("no_rules_deny_everything", [], ask(who("root", "admins", mfa=True)), False, DEFAULT),
    row("permit_for_another_server_denies", [ENG_GITHUB], ask(who("alice", "eng"), server="jira"), False, DEFAULT),
    row("default_permit_allows_what_no_rule_forbids", [], ask(who()), True, DEFAULT, default="permit"),
    row("default_permit_still_obeys_forbids", [{"id": "f", "effect": "forbid", "servers": ["github"]}], ask(who()),
        False, "f", default="permit"),
    # targets: servers, names, kinds
    row("tool_glob_permits_matching_names", [permit(tools=["get_*", "list_*"])], ask(who(), name="get_issue"), True,
        "p"),
    row("tool_glob_denies_other_names", [permit(tools=["get_*", "list_*"])], ask(who(), name="delete_issue"), False,
        DEFAULT),
    row("exact_tool_name_is_not_a_prefix", [permit(tools=["search"])], ask(who(), name="search2"), False, DEFAULT),
    row("tool_globs_are_case_sensitive", [permit(tools=["search"])], ask(who(), name="Search"), False, DEFAULT),
    row("question_mark_matches_one_character", [permit(tools=["v?_run"])], ask(who(), name="v2_run"), True, "p"),
    row("character_class_matches", [permit(tools=["run_[ab]"])], ask(who(), name="run_b"), True, "p"),
    row("character_class_excludes", [permit(tools=["run_[ab]"])], ask(who(), name="run_c"), False, DEFAULT),
    row("server_glob_permits_matching_servers", [permit(servers=["git*"])], ask(who(), server="gitlab"), True, "p"),
    row("server_glob_denies_other_servers", [permit(servers=["git*"])], ask(who(), server="bitbucket"), False,
        DEFAULT),
    row("kinds_limit_a_rule_to_prompts", [permit(kinds=["prompts"])], ask(who(), kind="prompts"), True, "p"),
    row("prompt_rule_does_not_cover_tools", [permit(kinds=["prompts"])], ask(who()), False, DEFAULT),
    row("resource_uri_is_matched_by_the_name_glob", [permit(kinds=["resources"], tools=["file:///docs/*"])],
        ask(who(), server="files", name="file:///docs/a.md", kind="resources"), True, "p"),
    # annotations
    row("declared_destructive_tool_is_forbidden", [EVERYONE, NO_DESTRUCTIVE],
        ask(who(), annotations={"destructiveHint": True}), False, "no-destructive"),
    row("undeclared_tool_is_destructive_by_default", [EVERYONE, NO_DESTRUCTIVE], ask(who(), annotations=None), False,
        "no-destructive"),
    row("read_only_tool_is_not_destructive", [EVERYONE, NO_DESTRUCTIVE], ask(who(), annotations={"readOnlyHint": True}),
        True, "everyone"),
    row("explicit_destructive_wins_over_read_only", [EVERYONE, NO_DESTRUCTIVE],
        ask(who(), annotations={"readOnlyHint": True, "destructiveHint": True}), False, "no-destructive"),
    row("non_boolean_hint_is_ignored", [EVERYONE, NO_DESTRUCTIVE], ask(who(), annotations={"destructiveHint": "no"}),
        False, "no-destructive"),
    row("additive_tool_passes_the_forbid", [EVERYONE, NO_DESTRUCTIVE],
        ask(who(), annotations={"destructiveHint": False}), True, "everyone"),
    row("trusted_permit_on_read_only_permits_declared_read_only",
        [permit(annotations={"readOnlyHint": True}, trust_annotations=True)],
        ask(who(), annotations={"readOnlyHint": True}), True, "p"),
    row("trusted_permit_on_read_only_denies_undeclared",
        [permit(annotations={"readOnlyHint": True}, trust_annotations=True)], ask(who(), annotations=None), False,
        DEFAULT),
    row("annotation_rules_pass_prompts_by", [EVERYONE, NO_DESTRUCTIVE], ask(who(), kind="prompts"), True, "everyone"),
    row("string_annotation_matches_exactly", [EVERYONE, {**NO_DESTRUCTIVE, "annotations": {"title": "Wipe"}}],
        ask(who(), annotations={"readOnlyHint": True, "title": "Wipe"}), False, "no-destructive"),
    # groups, clients, users
    row("any_listed_group_suffices", [permit(groups=["eng", "sre"])], ask(who("bob", "sre")), True, "p"),
    row("no_listed_group_denies", [permit(groups=["eng", "sre"])], ask(who("bob", "sales")), False, DEFAULT),
    row("group_names_are_not_globs", [permit(groups=["eng*"])], ask(who("bob", "engineering")), False, DEFAULT),
    row("client_glob_permits_matching_client", [permit(clients=["claude-*"])], ask(who(client_id="claude-code")),
        True, "p"),
    row("client_glob_denies_other_clients", [permit(clients=["claude-*"])], ask(who(client_id="cursor")), False,
        DEFAULT),
    row("client_rule_denies_an_unknown_client", [permit(clients=["*"])], ask(who()), False, DEFAULT),
    row("user_glob_permits_matching_subjects", [permit(users=["*@example.com"])], ask(who("alice@example.com")),
        True, "p"),
    row("user_glob_denies_other_subjects", [permit(users=["*@example.com"])], ask(who("alice@example.com.evil.io")),
        False, DEFAULT),
    # all conditions together, and unless
    row("all_conditions_holding_permits", [permit(groups=["eng"], mfa=True, networks=["office"], time=BUSINESS_HOURS)],
        ask(who("alice", "eng", mfa=True, ip="10.20.0.1")), True, "p"),
    row("one_failing_condition_denies", [permit(groups=["eng"], mfa=True, networks=["office"], time=BUSINESS_HOURS)],
        ask(who("alice", "eng", mfa=True, ip="8.8.8.8")), False, DEFAULT),
    row("unless_conditions_all_holding_exempt",
        [EVERYONE, {**NO_DESTRUCTIVE, "unless": {"mfa": True, "device": "enrolled"}}],
        ask(who(mfa=True, device="enrolled")), True, "everyone"),
    row("unless_conditions_partly_holding_do_not_exempt",
        [EVERYONE, {**NO_DESTRUCTIVE, "unless": {"mfa": True, "device": "enrolled"}}],
        ask(who(mfa=True, device="revoked")), False, "no-destructive"),
    row("forbid_conditions_limit_whom_it_forbids",
        [EVERYONE, {"id": "no-contractors", "effect": "forbid", "groups": ["contractors"]}], ask(who("eve", "staff")),
        True, "everyone"),
]  # fmt: skip


@pytest.mark.parametrize(("rules", "request_", "allowed", "rule", "default"), CASES)
def test_decision_table(rules: list[dict[str, Any]], request_: Request, allowed: bool, rule: str, default: str) -> None:
    decision = decide(compiled(*rules, default=default), request_)
    assert (decision.allowed, decision.rule) == (allowed, rule), decision.reason


@pytest.mark.requirement("policy:implicit-deny")
def test_nothing_is_permitted_without_a_permit_rule() -> None:
    policy = compiled({"id": "f", "effect": "forbid", "servers": ["other"]})
    for principal in (who(), who("root", "admins", mfa=True, device="enrolled", ip="10.20.0.1", client_id="x")):
        for kind in ("tools", "prompts", "resources"):
            decision = decide(policy, ask(principal, kind=kind))
            assert (decision.allowed, decision.rule) == (False, DEFAULT)


@pytest.mark.requirement("policy:forbid-overrides-permit")
def test_a_matching_forbid_beats_any_number_of_permits() -> None:
    permits = [{"id": f"p{i}", "effect": "permit"} for i in range(5)]
    policy = compiled(*permits, {"id": "f", "effect": "forbid", "tools": ["search"]})
    assert decide(policy, ask(who())).rule == "f"
    assert decide(policy, ask(who(), name="other")).allowed


@pytest.mark.requirement("policy:annotations-not-trusted-for-allow")
def test_an_untrusting_permit_cannot_be_written_on_annotations() -> None:
    with pytest.raises(ValidationError):
        compiled(permit(annotations={"readOnlyHint": True}))
    trusted = compiled(permit(annotations={"readOnlyHint": True}, trust_annotations=True))
    assert decide(trusted, ask(who(), annotations={"readOnlyHint": True})).allowed


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ask(who(), now=datetime(2026, 3, 4, 10, 30))

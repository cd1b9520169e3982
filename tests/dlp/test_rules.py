"""The `dlp:` section and its compiled rules: which rules apply to which destination, tool, direction and caller,
what a family stands for, which action wins, and configuration errors that name their key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from portico.config import load
from portico.dlp import default_detectors
from portico.dlp.rules import DlpRules, compile_rules
from portico.dlp.settings import FAMILIES, SECRETS, DlpSettings, builtin_names, expand
from portico.errors import ConfigError

# The policy of issue 4, as an operator writes it.
ISSUE_POLICY_YAML = """
servers:
  - {id: ledger, url: "http://127.0.0.1:9/mcp", tags: [finance]}
  - {id: payroll, url: "http://127.0.0.1:9/mcp", tags: [finance, hr]}
  - {id: crm, url: "http://127.0.0.1:9/mcp", tags: [third-party]}
  - {id: wiki, url: "http://127.0.0.1:9/mcp"}
dlp:
  rules:
    - id: cards-stay-in-finance          # no payment cards or SSNs to any server outside finance
      action: block
      direction: request
      detectors: [card, ssn]
      unless: {tags: [finance]}
    - id: no-secrets-to-third-parties    # secrets never to third-party servers
      action: block
      direction: request
      detectors: [secrets]
      tags: [third-party]
    - id: contractors-see-no-email       # redact e-mail addresses in results for the contractors group
      action: redact
      direction: response
      detectors: [email]
      groups: [contractors]
"""
TAGS = {"ledger": ["finance"], "payroll": ["finance", "hr"], "crm": ["third-party"], "wiki": []}
CONTRACTOR = frozenset({"contractors"})
STAFF = frozenset({"eng"})


@pytest.fixture(scope="module")
def issue_rules(tmp_path_factory: pytest.TempPathFactory) -> DlpRules:
    path = tmp_path_factory.mktemp("dlp") / "portico.yaml"
    path.write_text(ISSUE_POLICY_YAML)
    settings = load(path, env={})
    return compile_rules(settings.dlp, {server.id: server.tags for server in settings.servers})


def compiled(*rules: dict[str, Any], detectors: list[dict[str, Any]] | None = None) -> DlpRules:
    settings = DlpSettings.model_validate({"rules": list(rules), "detectors": detectors or []})
    return compile_rules(settings, TAGS)


def rule(**fields: Any) -> dict[str, Any]:
    return {"id": "r", "action": "block", "detectors": ["card"], **fields}


def scanned_by(rules: DlpRules, server: str, name: str, direction: Any, groups: frozenset[str]) -> set[str]:
    plan = rules.plan(server, name, direction, groups)
    return set() if plan.scanner is None else {d.name for d in plan.scanner.detectors}


# ------------------------------------------------------------------------------------------ the issue's policy


@pytest.mark.parametrize(
    ("server", "direction", "groups", "expected"),
    [
        pytest.param("ledger", "request", STAFF, (), id="finance-server-may-receive-cards"),
        pytest.param("payroll", "request", CONTRACTOR, (), id="a-second-finance-tag-changes-nothing"),
        pytest.param("wiki", "request", STAFF, ("cards-stay-in-finance",), id="untagged-server-is-outside-finance"),
        pytest.param(
            "crm",
            "request",
            STAFF,
            ("cards-stay-in-finance", "no-secrets-to-third-parties"),
            id="third-party-gets-neither-cards-nor-secrets",
        ),
        pytest.param("crm", "response", STAFF, (), id="staff-results-are-not-touched"),
        pytest.param("ledger", "response", CONTRACTOR, ("contractors-see-no-email",), id="contractor-results"),
        pytest.param("wiki", "response", CONTRACTOR | STAFF, ("contractors-see-no-email",), id="contractor-in-two"),
        pytest.param("ledger", "request", CONTRACTOR, (), id="contractor-rule-is-response-only"),
    ],
)
def test_the_issue_policy_loaded_from_yaml_applies_to_exactly_these_calls(
    issue_rules: DlpRules, server: str, direction: Any, groups: frozenset[str], expected: tuple[str, ...]
) -> None:
    assert issue_rules.plan(server, "send_invoice", direction, groups).rule_ids == expected


def test_a_third_party_request_is_scanned_once_for_cards_ssns_and_every_credential(issue_rules: DlpRules) -> None:
    assert scanned_by(issue_rules, "crm", "upload", "request", STAFF) == {"card", "us_ssn", *SECRETS}
    assert scanned_by(issue_rules, "ledger", "upload", "request", STAFF) == set()
    assert scanned_by(issue_rules, "ledger", "upload", "response", CONTRACTOR) == {"email"}


# ------------------------------------------------------------------------------------------ selectors


@pytest.mark.parametrize(
    ("selectors", "server", "name", "groups", "applies"),
    [
        pytest.param({"servers": ["crm"]}, "crm", "x", STAFF, True, id="server-id"),
        pytest.param({"servers": ["crm"]}, "wiki", "x", STAFF, False, id="other-server-id"),
        pytest.param({"servers": ["c*"]}, "crm", "x", STAFF, True, id="server-glob"),
        pytest.param({"tags": ["finance"]}, "payroll", "x", STAFF, True, id="one-of-its-tags"),
        pytest.param({"tags": ["finance"]}, "wiki", "x", STAFF, False, id="untagged-server"),
        pytest.param({"tools": ["send_*"]}, "crm", "send_mail", STAFF, True, id="tool-glob"),
        pytest.param({"tools": ["send_*"]}, "crm", "read_mail", STAFF, False, id="tool-glob-misses"),
        pytest.param({"tools": ["file:///exports/*"]}, "crm", "file:///exports/q3.csv", STAFF, True, id="uri-glob"),
        pytest.param({"groups": ["contractors"]}, "crm", "x", CONTRACTOR, True, id="group"),
        pytest.param({"groups": ["contractors"]}, "crm", "x", frozenset(), False, id="no-groups"),
        pytest.param({"tags": ["finance"], "groups": ["eng"]}, "ledger", "x", STAFF, True, id="all-keys-hold"),
        pytest.param({"tags": ["finance"], "groups": ["eng"]}, "ledger", "x", CONTRACTOR, False, id="one-key-fails"),
        pytest.param({"unless": {"tags": ["finance"]}}, "wiki", "x", STAFF, True, id="outside-finance"),
        pytest.param({"unless": {"tags": ["finance"]}}, "ledger", "x", STAFF, False, id="inside-finance"),
        pytest.param({"unless": {"groups": ["eng"]}}, "crm", "x", CONTRACTOR, True, id="anyone-but-eng"),
        pytest.param({"unless": {"groups": ["eng"]}}, "crm", "x", STAFF, False, id="eng-is-exempt"),
        pytest.param(
            {"unless": {"tags": ["finance"], "groups": ["eng"]}}, "ledger", "x", CONTRACTOR, True, id="unless-needs-all"
        ),
        pytest.param(
            {"unless": {"tags": ["finance"], "groups": ["eng"]}}, "ledger", "x", STAFF, False, id="unless-all-hold"
        ),
        pytest.param(
            {"tags": ["finance"], "unless": {"servers": ["payroll"]}}, "payroll", "x", STAFF, False, id="but-not-this"
        ),
        pytest.param({"unless": {"tools": ["health*"]}}, "crm", "healthcheck", STAFF, False, id="tool-exempt"),
    ],
)
def test_a_rule_applies_when_its_selectors_hold_and_its_unless_does_not(
    selectors: dict[str, Any], server: str, name: str, groups: frozenset[str], applies: bool
) -> None:
    rules = compiled(rule(**selectors))
    assert rules.plan(server, name, "request", groups).rule_ids == (("r",) if applies else ())


@pytest.mark.parametrize(
    ("direction", "outbound", "inbound"),
    [("request", True, False), ("response", False, True), ("both", True, True)],
)
def test_a_rule_covers_only_its_direction(direction: str, outbound: bool, inbound: bool) -> None:
    rules = compiled(rule(direction=direction))
    assert bool(rules.plan("crm", "x", "request", STAFF).rules) is outbound
    assert bool(rules.plan("crm", "x", "response", STAFF).rules) is inbound


def test_a_value_two_rules_catch_gets_the_strongest_action_and_the_first_rule_on_a_tie() -> None:
    rules = compiled(
        rule(id="log-all-pii", action="log", detectors=["pii"]),
        rule(id="mask-email", action="redact", detectors=["email"]),
        rule(id="block-ssn", action="block", detectors=["ssn"]),
        rule(id="block-ssn-too", action="block", detectors=["us_ssn", "card"]),
    )
    deciding = rules.plan("crm", "x", "request", STAFF).deciding
    assert deciding["email"].id == "mask-email"
    assert deciding["us_ssn"].id == "block-ssn"
    assert deciding["phone"].id == "log-all-pii"
    assert deciding["card"].id == "block-ssn-too"


# ------------------------------------------------------------------------------------------ families


def test_every_family_names_built_ins_only_and_every_built_in_is_in_a_family() -> None:
    names = set(builtin_names())
    assert names == {d.name for d in default_detectors()}
    for family, members in FAMILIES.items():
        assert set(members) <= names, family
    assert names == {m for members in FAMILIES.values() for m in members}


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (["secrets"], set(SECRETS)),
        (["credentials"], set(SECRETS)),
        (["financial"], {"card", "iban"}),
        (["pii"], {"us_ssn", "fr_nir", "de_idnr", "nl_bsn", "email", "phone"}),
        (["ssn", "us_ssn", "card"], {"us_ssn", "card"}),
        (["all"], {*builtin_names(), "project-codename"}),
        (["project-codename"], {"project-codename"}),
    ],
)
def test_families_and_aliases_open_into_detector_names(written: list[str], expected: set[str]) -> None:
    assert set(expand(written, ("project-codename",))) == expected


def test_an_admin_detector_is_scanned_only_where_a_rule_names_it() -> None:
    rules = compiled(
        rule(id="codenames-stay-home", detectors=["project-codename"], tags=["third-party"]),
        detectors=[{"name": "project-codename", "keywords": ["Bluebird", "Nightjar"]}],
    )
    assert scanned_by(rules, "crm", "x", "request", STAFF) == {"project-codename"}
    assert scanned_by(rules, "wiki", "x", "request", STAFF) == set()
    plan = rules.plan("crm", "x", "request", STAFF)
    assert plan.scanner is not None
    assert [f.detector for f in plan.scanner.scan({"note": "status of project nightjar?"})] == ["project-codename"]


# ------------------------------------------------------------------------------------------ the plan cache


def test_plans_are_cached_and_groups_no_rule_names_do_not_split_the_cache() -> None:
    rules = compiled(rule(groups=["contractors"]))
    first = rules.plan("crm", "x", "request", frozenset({"contractors", "eng"}))
    assert rules.plan("crm", "x", "request", frozenset({"contractors", "sales"})) is first
    assert rules.plan("crm", "x", "request", frozenset({"eng"})) is rules.plan("crm", "x", "request", frozenset())


def test_plans_with_the_same_detectors_share_one_scanner_and_the_cache_is_bounded() -> None:
    settings = DlpSettings.model_validate({"rules": [rule(servers=["crm", "wiki"])]})
    rules = compile_rules(settings, TAGS, max_cached=3)
    scanners = {id(rules.plan(server, f"tool-{i}", "request", STAFF).scanner) for i in range(5) for server in TAGS}
    assert len(scanners) == 2  # one scanner, and None for the servers the rule does not cover
    assert len(rules._plans) <= 3


def test_no_rules_or_disabled_means_nothing_is_scanned() -> None:
    assert not compile_rules(DlpSettings(), TAGS).active
    off = DlpSettings.model_validate({"enabled": False, "rules": [rule()]})
    assert not compile_rules(off, TAGS).active


# ------------------------------------------------------------------------------------------ configuration errors


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        pytest.param(
            {"rules": [rule(), rule(id="b"), rule(id="c", detectors=["email", "ccard"])]},
            "dlp.rules[2].detectors",
            "unknown detector 'ccard' (did you mean 'card'?)",
            id="unknown-detector",
        ),
        pytest.param({"rules": [rule(), rule()]}, "dlp.rules[1].id", "duplicate rule id 'r'", id="duplicate-rule"),
        pytest.param({"rules": [rule(action="mask")]}, "dlp.rules[0].action", "", id="unknown-action"),
        pytest.param({"rules": [rule(direction="out")]}, "dlp.rules[0].direction", "", id="unknown-direction"),
        pytest.param({"rules": [rule(detectors=[])]}, "dlp.rules[0].detectors", "at least one", id="no-detectors"),
        pytest.param({"rules": [rule(id="dlp.x")]}, "dlp.rules[0].id", "", id="dotted-rule-id"),
        pytest.param({"rules": [rule(unless={})]}, "dlp.rules[0]", "unless: must name", id="empty-unless"),
        pytest.param({"rules": [rule(tags=["Finance"])]}, "dlp.rules[0].tags", "lowercase", id="tag-shape"),
        pytest.param({"rules": [rule(groups=[])]}, "dlp.rules[0].groups", "at least one", id="empty-group-list"),
        pytest.param({"rules": [rule(servers_except=["x"])]}, "dlp.rules[0].servers_except", "", id="unknown-key"),
        pytest.param(
            {"detectors": [{"name": "card", "regex": "x+"}]}, "dlp.detectors[0].name", "built-in", id="shadows-card"
        ),
        pytest.param(
            {"detectors": [{"name": "emp", "regex": "EMP-[0-9]{6}", "keywords": ["emp"]}]},
            "dlp.detectors[0]",
            "exactly one",
            id="regex-and-keywords",
        ),
        pytest.param({"detectors": [{"name": "emp", "regex": "(EMP"}]}, "dlp.detectors[0]", "", id="bad-regex"),
        pytest.param(
            {"detectors": [{"name": "emp", "regex": "x*"}]}, "dlp.detectors[0]", "empty string", id="empty-match"
        ),
        pytest.param(
            {"detectors": [{"name": "emp", "keywords": ["a"]}, {"name": "emp", "keywords": ["b"]}]},
            "dlp.detectors[1].name",
            "duplicate detector name 'emp'",
            id="duplicate-detector",
        ),
    ],
)
def test_an_invalid_section_is_refused_naming_the_key_and_line(
    tmp_path: Path, section: dict[str, Any], key: str, message: str
) -> None:
    path = tmp_path / "portico.yaml"
    path.write_text(json.dumps({"dlp": section}, indent=2))  # JSON is YAML, one key a line
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    public = caught.value.public
    assert f": {key} (line " in public
    assert message in public


@pytest.mark.parametrize(
    ("selectors", "key"),
    [
        ({"tags": ["third-pary"]}, "dlp.rules[0].tags: no server carries tag 'third-pary'"),
        ({"unless": {"tags": ["finanse"]}}, "dlp.rules[0].unless.tags: no server carries tag 'finanse'"),
        ({"servers": ["crn"]}, "dlp.rules[0].servers: no server has id 'crn'"),
    ],
)
def test_a_rule_that_could_never_match_a_configured_server_is_refused(selectors: dict[str, Any], key: str) -> None:
    settings = DlpSettings.model_validate({"rules": [rule(**selectors)]})
    with pytest.raises(ConfigError) as caught:
        compile_rules(settings, TAGS)
    assert caught.value.public == key


def test_the_regex_error_is_a_validation_error_of_the_section_not_a_crash() -> None:
    with pytest.raises(ValidationError) as caught:
        DlpSettings.model_validate({"detectors": [{"name": "emp", "regex": "(EMP"}]})
    assert caught.value.errors()[0]["loc"] == ("detectors", 0)

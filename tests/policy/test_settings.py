"""The `policy:` section: what it accepts, and that every refusal names its key."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from portico.policy import PolicySettings, compile_policy
from portico.policy.settings import TimeWindow


def rule(**fields: Any) -> dict[str, Any]:
    return {"id": "r", "effect": "permit", **fields}


def test_an_empty_section_is_implicit_deny_with_no_rules() -> None:
    settings = PolicySettings()
    assert (settings.default, settings.rules, settings.networks) == ("deny", [], {})
    assert compile_policy(settings).default_permit is False


def test_a_rule_defaults_to_every_server_tool_and_kind() -> None:
    [parsed] = PolicySettings.model_validate({"rules": [rule()]}).rules
    assert (parsed.servers, parsed.tools, parsed.kinds) == (["*"], ["*"], ["tools", "prompts", "resources"])
    assert (parsed.time, parsed.unless, parsed.mfa) == (None, None, False)


def test_country_codes_are_upper_cased() -> None:
    [parsed] = PolicySettings.model_validate({"rules": [rule(countries=["de", "At"])]}).rules
    assert parsed.countries == ["DE", "AT"]


@pytest.mark.parametrize(
    "window",
    [
        {"start": "00:00", "end": "24:00"},
        {"days": ["sat", "sun"], "start": "22:00", "end": "06:00", "tz": "America/New_York"},
        {"start": "23:59", "end": "00:00"},
    ],
)
def test_time_windows_that_are_accepted(window: dict[str, Any]) -> None:
    TimeWindow.model_validate(window)


@pytest.mark.parametrize(
    ("policy", "loc", "key_in_message"),
    [
        pytest.param({"rules": [{"effect": "permit"}]}, ("rules", 0, "id"), None, id="rule_without_id"),
        pytest.param({"rules": [{"id": "r"}]}, ("rules", 0, "effect"), None, id="rule_without_effect"),
        pytest.param({"rules": [rule(effect="allow")]}, ("rules", 0, "effect"), None, id="unknown_effect"),
        pytest.param({"rules": [rule(id="has space")]}, ("rules", 0, "id"), None, id="rule_id_with_a_space"),
        pytest.param({"rules": [rule(id="policy.default")]}, ("rules", 0, "id"), None, id="rule_id_like_the_default"),
        pytest.param({"rules": [rule(), rule()]}, (), "rules[1].id", id="duplicate_rule_ids"),
        pytest.param({"rules": [rule(color="red")]}, ("rules", 0, "color"), None, id="unknown_rule_key"),
        pytest.param({"default": "allow"}, ("default",), None, id="unknown_default"),
        pytest.param({"rulez": []}, ("rulez",), None, id="unknown_section_key"),
        pytest.param({"rules": [rule(servers=[])]}, ("rules", 0, "servers"), None, id="empty_server_list"),
        pytest.param({"rules": [rule(tools=[""])]}, ("rules", 0, "tools"), None, id="empty_tool_glob"),
        pytest.param({"rules": [rule(groups=[])]}, ("rules", 0, "groups"), None, id="empty_group_list"),
        pytest.param({"rules": [rule(kinds=["tools", "widgets"])]}, ("rules", 0, "kinds", 1), None, id="bad_kind"),
        pytest.param({"rules": [rule(kinds=[])]}, ("rules", 0, "kinds"), None, id="no_kinds"),
        pytest.param({"rules": [rule(device="managed")]}, ("rules", 0, "device"), None, id="unknown_device_state"),
        pytest.param({"rules": [rule(countries=["DEU"])]}, ("rules", 0, "countries"), None, id="three_letter_country"),
        pytest.param({"rules": [rule(networks=["office"])]}, (), "rules[0].networks", id="unknown_network"),
        pytest.param(
            {"rules": [rule(effect="forbid", unless={"networks": ["vpn"]})]},
            (),
            "rules[0].unless.networks",
            id="unknown_network_in_unless",
        ),
        pytest.param({"networks": {"office": ["10.0.0.1/8"]}}, ("networks",), None, id="cidr_with_host_bits"),
        pytest.param({"networks": {"office": ["not-an-ip"]}}, ("networks",), None, id="cidr_that_is_not_an_address"),
        pytest.param({"networks": {"office": []}}, ("networks",), None, id="network_without_cidrs"),
        pytest.param({"networks": {"off ice": ["10.0.0.0/8"]}}, ("networks",), None, id="network_name_with_space"),
        pytest.param({"rules": [rule(time={"start": "9:00"})]}, ("rules", 0, "time", "start"), None, id="clock_h_mm"),
        pytest.param({"rules": [rule(time={"end": "24:01"})]}, ("rules", 0, "time", "end"), None, id="clock_past_24"),
        pytest.param({"rules": [rule(time={"start": "24:00"})]}, ("rules", 0, "time"), None, id="start_at_24"),
        pytest.param(
            {"rules": [rule(time={"start": "10:00", "end": "10:00"})]}, ("rules", 0, "time"), None, id="empty_window"
        ),
        pytest.param({"rules": [rule(time={"tz": "Europe/Berln"})]}, ("rules", 0, "time", "tz"), None, id="bad_zone"),
        pytest.param({"rules": [rule(time={"days": ["funday"]})]}, ("rules", 0, "time", "days", 0), None, id="bad_day"),
        pytest.param({"rules": [rule(time={"days": []})]}, ("rules", 0, "time", "days"), None, id="no_days"),
        pytest.param(
            {"rules": [rule(annotations={"readOnlyHint": True})]},
            ("rules", 0),
            "annotations:",
            id="permit_relying_on_untrusted_annotations",
        ),
        pytest.param(
            {"rules": [rule(effect="forbid", kinds=["prompts"], annotations={"destructiveHint": True})]},
            ("rules", 0),
            "annotations:",
            id="annotations_on_a_rule_without_tools",
        ),
        pytest.param(
            {"rules": [rule(annotations={"destructiveHint": [1]})]},
            ("rules", 0, "annotations", "destructiveHint", "bool"),
            None,
            id="annotation_value_that_is_not_a_scalar",
        ),
        pytest.param({"rules": [rule(unless={"mfa": True})]}, ("rules", 0), "unless:", id="unless_on_a_permit"),
        pytest.param({"rules": [rule(effect="forbid", unless={})]}, ("rules", 0), "unless:", id="empty_unless"),
    ],
)
def test_invalid_policy_names_the_key(policy: dict[str, Any], loc: tuple[Any, ...], key_in_message: str | None) -> None:
    with pytest.raises(ValidationError) as caught:
        PolicySettings.model_validate(policy)
    first = caught.value.errors()[0]
    assert first["loc"] == loc
    if key_in_message is not None:
        assert first["msg"].removeprefix("Value error, ").startswith(key_in_message)

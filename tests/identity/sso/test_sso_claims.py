"""Claims → identity, pure: overage detection, group mapping, subject and username rules."""

from __future__ import annotations

from typing import Any

import pytest

from portico.identity.sso.claims import build_identity, find_overage, map_groups, parse_group_page, read_groups
from portico.identity.sso.errors import SsoError, SsoFailure
from portico.identity.sso.settings import SsoProviderSettings


def settings(**overrides: Any) -> SsoProviderSettings:
    base = {"id": "idp", "display_name": "IdP", "issuer": "https://idp.example.com", "client_id": "c",
            "client_secret": "s"}  # fmt: skip
    return SsoProviderSettings.model_validate({**base, **overrides})


SOURCES = {"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://g.example/x"}}}


@pytest.mark.parametrize(
    ("claims", "claim", "endpoint"),
    [
        ({"groups": ["a"]}, "groups", None),
        ({}, "groups", None),
        ({"groups": []}, "groups", None),
        (SOURCES, "groups", "https://g.example/x"),
        ({"_claim_names": {"groups": "src1"}}, "groups", ""),  # marker without a usable source
        ({"hasgroups": True}, "groups", ""),
        ({"hasgroups": "true"}, "groups", None),  # not the boolean: not the marker
        ({"hasgroups": True}, "roles", None),  # only groups overflow
        ({**SOURCES, "groups": ["a"]}, "groups", None),  # the claim itself wins
    ],
)
def test_group_overage_is_found(claims: dict[str, Any], claim: str, endpoint: str | None) -> None:
    found = find_overage(claims, claim)
    if endpoint is None:
        assert found is None
    else:
        assert found is not None
        assert found.endpoint == (endpoint or None)


@pytest.mark.parametrize(
    ("value", "groups"),
    [(["a", "b"], ["a", "b"]), ("a", ["a"]), (None, []), (42, []), (["a", 1, None, "", "b"], ["a", "b"])],
)
def test_groups_are_read_as_a_list_of_strings(value: Any, groups: list[str]) -> None:
    assert read_groups({"groups": value}, "groups") == groups


@pytest.mark.parametrize(
    ("raw", "mapping", "pass_unmapped", "expected"),
    [
        (["a", "b"], {"a": "eng"}, False, {"eng"}),
        (["a", "b"], {"a": "eng"}, True, {"eng", "b"}),
        (["a", "b"], {"a": "eng", "b": "eng"}, False, {"eng"}),
        ([], {"a": "eng"}, True, set()),
        (["eng"], {}, False, set()),  # an IdP group named like a Portico group does not become it
    ],
)
def test_groups_are_mapped(raw: list[str], mapping: dict[str, str], pass_unmapped: bool, expected: set[str]) -> None:
    assert map_groups(raw, mapping, pass_unmapped) == expected


def test_graph_pages_yield_group_ids_and_the_next_link() -> None:
    doc = {"value": ["a", {"id": "b"}, {"id": "c", "@odata.type": "#microsoft.graph.directoryRole"}, 3],
           "@odata.nextLink": "https://g/next"}  # fmt: skip
    assert parse_group_page(doc) == (["a", "b"], "https://g/next")
    with pytest.raises(SsoError) as info:
        parse_group_page({"groups": []})
    assert info.value.reason is SsoFailure.GROUPS_FETCH_FAILED


@pytest.mark.parametrize(
    ("claims", "username"),
    [
        ({"sub": "s", "preferred_username": "p", "email": "e@x"}, "p"),
        ({"sub": "s", "email": "e@x"}, "e@x"),
        ({"sub": "s"}, "s"),
        ({"sub": "s", "preferred_username": ["not", "text"]}, "s"),
    ],
)
def test_username_falls_back_to_email_then_subject(claims: dict[str, Any], username: str) -> None:
    assert build_identity(settings(), claims, []).username == username


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": 7}, {"sub": "x" * 2000}])
def test_a_missing_or_unusable_subject_is_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(SsoError) as info:
        build_identity(settings(), claims, [])
    assert info.value.reason is SsoFailure.SUBJECT_MISSING


def test_allowed_groups_apply_after_mapping() -> None:
    s = settings(group_map={"idp-ops": "ops"}, allowed_groups=["ops"])
    assert build_identity(s, {"sub": "u"}, ["idp-ops"]).groups == {"ops"}
    with pytest.raises(SsoError) as info:
        build_identity(s, {"sub": "u"}, ["ops"])  # the unmapped IdP value "ops" is not the Portico group
    assert info.value.reason is SsoFailure.GROUP_NOT_ALLOWED


def test_amr_keeps_only_short_strings_and_can_be_distrusted() -> None:
    claims = {"sub": "u", "amr": ["pwd", "mfa", 3, "", "x" * 40, "mfa"]}
    identity = build_identity(settings(), claims, [])
    assert (identity.amr, identity.mfa) == (("pwd", "mfa"), True)
    assert build_identity(settings(mfa_from_amr=False), claims, []).amr == ()

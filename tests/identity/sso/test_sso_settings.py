"""`SsoProviderSettings`: what an operator may and may not configure."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from portico.identity.sso.settings import SsoProviderSettings

BASE: dict[str, Any] = {
    "id": "entra",
    "display_name": "Entra ID",
    "issuer": "https://login.microsoftonline.com/tenant/v2.0",
    "client_id": "cid",
    "client_secret": "secret",
}


def settings(**overrides: Any) -> SsoProviderSettings:
    return SsoProviderSettings.model_validate({**BASE, **overrides})


def test_defaults_are_the_safe_ones() -> None:
    s = settings()
    assert s.scopes == ["openid", "profile", "email"]
    assert (s.subject_claim, s.username_claim, s.groups_claim) == ("sub", "preferred_username", "groups")
    assert (s.pass_unmapped_groups, s.groups_overage, s.send_resource, s.mfa_from_amr) == (False, "deny", False, True)
    assert s.subject_namespace == "entra:"
    assert settings(subject_prefix="").subject_namespace == ""


def test_the_client_secret_never_shows_in_repr() -> None:
    assert "secret" not in repr(settings(client_secret="hunter2-secret")).replace("client_secret", "")


@pytest.mark.parametrize(
    "overrides",
    [
        {"issuer": "http://idp.example.com"},  # http off loopback
        {"issuer": "https://idp.example.com?x=1"},
        {"issuer": "idp.example.com"},
        {"id": "Entra"},
        {"id": "a/b"},
        {"id": ""},
        {"scopes": ["profile"]},
        {"scopes": ["openid", "a b"]},
        {"extra_authorize_params": {"state": "x"}},
        {"extra_authorize_params": {"code_challenge_method": "plain"}},
        {"extra_authorize_params": {"redirect_uri": "https://evil.example.com"}},
        {"token_endpoint_auth_method": "none"},
        {"groups_overage": "fetch", "groups_endpoint": "https://graph.microsoft.com/v1.0/me/memberOf"},  # unlisted
        {"groups_endpoint": "https://login.microsoftonline.com/x"},  # only with fetch
        {"unknown": 1},
    ],
)
def test_unsafe_or_malformed_settings_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        settings(**overrides)


@pytest.mark.parametrize("issuer", ["http://127.0.0.1:8080", "http://localhost:9000/realms/x", "http://[::1]:1"])
def test_http_is_accepted_for_loopback_issuers(issuer: str) -> None:
    assert settings(issuer=issuer).issuer == issuer


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://login.microsoftonline.com/tenant/users/x/getMemberObjects", True),
        ("https://graph.microsoft.com/v1.0/me/memberOf", True),
        ("https://graph.microsoft.com:8443/v1.0/me/memberOf", False),
        ("http://graph.microsoft.com/v1.0/me/memberOf", False),
        ("https://graph.windows.net/tenant/users/x/getMemberObjects", False),
        ("https://evil.example.com/graph.microsoft.com", False),
    ],
)
def test_the_access_token_goes_only_to_allowlisted_hosts(url: str, allowed: bool) -> None:
    s = settings(groups_overage="fetch", groups_fetch_hosts=["graph.microsoft.com"])
    assert s.may_send_token_to(url) is allowed

"""The pure cores of upstream OAuth discovery: the SSRF guard, the challenge parser, resource matching, scopes."""

from __future__ import annotations

import pytest

from portico.upstream.oauth_discovery import (
    UpstreamAuthError,
    address_allowed,
    check_url,
    check_url_shape,
    parse_challenge,
    resource_matches,
    select_scopes,
)
from portico.upstream.oauth_settings import UpstreamOAuthSettings

pytestmark = pytest.mark.anyio


@pytest.mark.requirement("upstream-oauth:ssrf")
@pytest.mark.parametrize(
    ("address", "loopback", "private", "allowed"),
    [
        ("93.184.216.34", False, False, True),
        ("127.0.0.1", False, False, False),
        ("127.0.0.1", True, False, True),
        ("::1", True, False, True),
        ("169.254.169.254", True, True, False),  # cloud metadata: never
        ("fe80::1", True, True, False),
        ("::ffff:169.254.169.254", True, True, False),  # IPv4-mapped
        ("::ffff:127.0.0.1", False, False, False),
        ("10.0.0.5", False, False, False),
        ("10.0.0.5", False, True, True),
        ("192.168.1.1", False, False, False),
        ("100.64.0.1", False, False, False),  # carrier-grade NAT
        ("0.0.0.0", True, True, False),
        ("224.0.0.1", True, True, False),
        ("fd00:ec2::254", False, False, False),
    ],
)
def test_the_address_guard_refuses_link_local_metadata_and_unexpected_internal_addresses(
    address: str, loopback: bool, private: bool, allowed: bool
) -> None:
    assert address_allowed(address, allow_loopback=loopback, allow_private=private) is allowed


@pytest.mark.requirement("upstream-oauth:ssrf")
@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "data:text/html,hi",
        "vbscript:msgbox",
        "http://example.com/as",
        "https://user:pw@example.com/as",
        "https://example.com/as#frag",
        "https:///nohost",
        "https://exa mple.com/$(touch /tmp/x)",
    ],
)
def test_url_shapes_other_than_plain_https_are_refused(url: str) -> None:
    with pytest.raises(UpstreamAuthError):
        check_url_shape(url, allow_loopback=True)


@pytest.mark.parametrize(
    "url", ["http://0177.0.0.1/", "http://0x7f000001/", "http://2130706433/", "https://169.254.169.254/"]
)
async def test_numeric_spellings_are_judged_by_what_they_resolve_to(url: str) -> None:
    with pytest.raises(UpstreamAuthError):
        await check_url(url, allow_loopback=False, allow_private=False)


def test_http_is_allowed_only_to_loopback_beside_a_loopback_server() -> None:
    assert check_url_shape("http://127.0.0.1:9/as", allow_loopback=True)
    with pytest.raises(UpstreamAuthError):
        check_url_shape("http://127.0.0.1:9/as", allow_loopback=False)


@pytest.mark.parametrize(
    ("header", "metadata", "scope", "error"),
    [
        ('Bearer resource_metadata="https://a/.well-known/x", scope="a b"', "https://a/.well-known/x", "a b", None),
        ('Bearer error="insufficient_scope", scope="files:write"', None, "files:write", "insufficient_scope"),
        ("Bearer realm=x, resource_metadata=https://a/m", "https://a/m", None, None),
        ('Basic realm="x", Bearer scope="s"', None, "s", None),
    ],
)
def test_bearer_challenges_are_parsed(header: str, metadata: str | None, scope: str | None, error: str | None) -> None:
    challenge = parse_challenge(header)
    assert challenge is not None
    assert (challenge.resource_metadata, challenge.scope, challenge.error) == (metadata, scope, error)
    assert parse_challenge('Basic realm="x"') is None
    assert parse_challenge(None) is None


@pytest.mark.parametrize(
    ("resource", "server", "ok"),
    [
        ("https://a.example/mcp", "https://a.example/mcp", True),
        ("https://a.example/", "https://a.example/mcp", True),
        ("https://a.example/mcp", "https://a.example/mcp2", False),
        ("https://b.example/mcp", "https://a.example/mcp", False),
        ("http://a.example/mcp", "https://a.example/mcp", False),
    ],
)
def test_the_protected_resource_must_name_the_server(resource: str, server: str, ok: bool) -> None:
    assert resource_matches(resource, server) is ok


def test_scopes_come_from_config_then_the_challenge_then_the_metadata() -> None:
    challenge = parse_challenge('Bearer scope="from:challenge"')
    prm = {"scopes_supported": ["from:prm"]}
    assert select_scopes(UpstreamOAuthSettings(scopes=["mine"]), challenge, prm) == ("mine",)
    assert select_scopes(UpstreamOAuthSettings(), challenge, prm) == ("from:challenge",)
    assert select_scopes(UpstreamOAuthSettings(), None, prm) == ("from:prm",)
    assert select_scopes(UpstreamOAuthSettings(), None, {}) == ()


@pytest.mark.parametrize("field", ["client_secret", "catalog_credential"])
def test_oauth_secrets_in_config_must_be_references(field: str) -> None:
    with pytest.raises(ValueError, match="reference"):
        UpstreamOAuthSettings.model_validate({field: "plain-secret"})
    assert UpstreamOAuthSettings.model_validate({field: "${vault:x}"})

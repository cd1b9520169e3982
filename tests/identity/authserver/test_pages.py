"""The sign-in pages' Content-Security-Policy lets a form end at the client's redirect URI and nowhere else:
browsers check `form-action` against every redirect a form submission follows (tests/web shows Chromium)."""

from __future__ import annotations

import pytest

from portico.identity.authserver.pages import SECURITY_HEADERS, form_action_source, security_headers


@pytest.mark.parametrize(
    ("redirect_uri", "source"),
    [
        ("http://127.0.0.1:47613/callback", "http://127.0.0.1:47613"),
        ("http://[::1]:8080/cb", "http://[::1]:8080"),
        ("https://app.example/oauth/cb?x=1", "https://app.example"),
        ("HTTPS://App.Example/cb", "https://App.Example"),
        ("com.example.app:/oauth/cb", "com.example.app:"),
        ("cursor://anysphere.cursor-mcp/oauth/callback", "cursor:"),
        ("https://user@app.example/cb", None),
        ("https://app example/cb", None),
        ("not a uri", None),
    ],
)
def test_the_form_action_source_is_the_redirect_uris_origin_or_private_scheme(
    redirect_uri: str, source: str | None
) -> None:
    assert form_action_source(redirect_uri) == source


def test_pages_without_a_client_allow_forms_to_themselves_only() -> None:
    assert "form-action 'self';" in SECURITY_HEADERS["content-security-policy"] or SECURITY_HEADERS[
        "content-security-policy"
    ].endswith("form-action 'self'")
    assert (
        "form-action 'self' https://app.example"
        in security_headers("https://app.example/cb")["content-security-policy"]
    )

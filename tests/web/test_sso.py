"""Signing in with an external OpenID Connect provider from the sign-in page, in a real Chromium: the button, the
round trip through the test issuer on loopback (tests/support/oidc_issuer.py, which auto-approves its user), and
the consent page as that user. Portico's client secret at the IdP is an `${env:…}` reference."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.support.chromium import BrowserSession
from tests.support.oidc_issuer import OidcIssuer, serve_asgi
from tests.support.portico import make_settings
from tests.upstreams.launch import stdio_argv
from tests.web.flow import Portal, claims_of, pkce

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

SECRET_ENV = "PORTICO_TEST_WEB_SSO_SECRET"


@pytest.fixture(scope="module")
async def idp(anyio_backend: str) -> AsyncIterator[OidcIssuer]:
    issuer = OidcIssuer()
    async with serve_asgi(issuer.app, issuer.port):
        yield issuer


@pytest.fixture(scope="module")
def portal_settings(tmp_path_factory: pytest.TempPathFactory, idp: OidcIssuer) -> Iterator[Any]:
    """The module's Portico (see conftest `portal`), with the test issuer as SSO provider `testidp`."""
    tmp: Path = tmp_path_factory.mktemp("web-sso")
    provider = {
        "id": "testidp",
        "display_name": "Test IdP",
        "issuer": idp.issuer,
        "client_id": idp.client_id,
        "client_secret": f"${{env:{SECRET_ENV}}}",
    }
    with pytest.MonkeyPatch.context() as env:  # read when Portico starts (the `portal` fixture)
        env.setenv(SECRET_ENV, idp.client_secret)
        yield make_settings(
            tmp,
            [{"id": "echo", "command": stdio_argv("echo")}],
            auth="oauth",
            identity={
                "tokens": {"key_file": str(tmp / "signing-keys.json")},
                "sso": [provider],
                "sso_state_key_file": str(tmp / "sso-state.key"),
            },
        )


async def test_the_sign_in_button_of_an_idp_leads_through_it_to_consent_as_its_user(
    portal: Portal, idp: OidcIssuer, session: BrowserSession
) -> None:
    sso = portal.running.portico.sso
    assert sso is not None
    if sso.redirect_uri("testidp") not in idp.redirect_uris:
        idp.redirect_uris.append(sso.redirect_uri("testidp"))
    verifier, challenge = pkce()
    page = await session.context.new_page()
    await page.goto(portal.authorize_url(challenge, "st-sso"))
    await expect(page).to_have_title("Sign in")

    await page.get_by_role("link", name="Sign in with Test IdP").click()

    await expect(page).to_have_title("Allow access?")
    assert page.url.startswith(f"{portal.base}/consent")
    await expect(page.locator("body")).to_contain_text(idp.user.name or "")
    assert [params["client_id"] for params in idp.sent("/authorize")] == [idp.client_id]
    async with session.to_client(page):
        await page.get_by_role("button", name="Approve").click()
    params = session.callback_params()
    assert params["state"] == "st-sso"
    tokens = await portal.exchange(params["code"], verifier)
    assert claims_of(tokens["access_token"])["sub"] == f"testidp:{idp.user.sub}"
    assert "result" in await portal.list_tools(tokens["access_token"])

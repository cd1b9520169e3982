"""The happy paths: metadata, the code flow with PKCE for a registered client, TOTP, consent, refresh rotation."""

from __future__ import annotations

from typing import Any

import pytest

from portico.identity.tokens import InvalidTokenError, TokenRejection
from tests.identity.authserver.conftest import PASSWORD, REDIRECT, hidden, jti_of, pkce, query_of
from tests.identity.test_users import code as totp_code
from tests.identity.test_users import enrol

pytestmark = pytest.mark.anyio


async def test_metadata_names_every_endpoint_under_the_issuer_and_only_s256(make_harness: Any) -> None:
    async with make_harness() as h:
        response = await h.http.get(h.url("/.well-known/oauth-authorization-server"))
        jwks = (await h.http.get(h.url("/oauth/jwks.json"))).json()
    assert response.status_code == 200
    doc = response.json()
    assert doc["issuer"] == h.base
    assert doc["authorization_endpoint"] == h.base + "/oauth/authorize"
    assert doc["token_endpoint"] == h.base + "/oauth/token"
    assert doc["registration_endpoint"] == h.base + "/oauth/register"
    assert doc["revocation_endpoint"] == h.base + "/oauth/revoke"
    assert doc["jwks_uri"] == h.base + "/oauth/jwks.json"
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert set(doc["token_endpoint_auth_methods_supported"]) == {"none", "client_secret_basic", "client_secret_post"}
    assert doc["scopes_supported"] == ["mcp"]
    assert doc["client_id_metadata_document_supported"] is True
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert [k["kty"] for k in jwks["keys"]] == ["EC"]


async def test_registration_endpoint_is_absent_when_dynamic_registration_is_off(make_harness: Any) -> None:
    async with make_harness(dynamic_registration=False) as h:
        doc = (await h.http.get(h.url("/.well-known/oauth-authorization-server"))).json()
        response = await h.http.post(h.url("/oauth/register"), json={"redirect_uris": [REDIRECT]})
    assert "registration_endpoint" not in doc
    assert response.status_code == 404


async def test_registered_public_client_completes_the_code_flow_and_gets_a_token_for_the_resource(
    make_harness: Any,
) -> None:
    async with make_harness() as h:
        client = await h.register()
        assert "client_secret" not in client
        verifier, challenge = pkce()
        code = await h.code_for(client["client_id"], challenge, resource=h.resources[1])
        response = await h.exchange(client["client_id"], code, verifier, resource=h.resources[1])
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        token = h.verifier.verify(body["access_token"], h.resources[1])
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "mcp"
    assert body["refresh_token"]
    assert token.subject == "alice"
    assert token.client_id == client["client_id"]
    assert token.groups == {"eng"}
    assert token.amr == ("pwd",)
    assert token.scopes == {"mcp"}
    with pytest.raises(InvalidTokenError) as err:
        h.verifier.verify(body["access_token"], h.resources[0])  # bound to the one resource it was issued for
    assert err.value.reason is TokenRejection.AUDIENCE


async def test_a_request_without_resource_is_bound_to_the_portal_resource(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        verifier, challenge = pkce()
        code = await h.code_for(client["client_id"], challenge)
        body = (await h.exchange(client["client_id"], code, verifier)).json()
        assert h.verifier.verify(body["access_token"], h.resources[0]).subject == "alice"


async def test_confidential_client_authenticates_with_basic_at_the_token_endpoint(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register(token_endpoint_auth_method="client_secret_basic")
        cid, secret = client["client_id"], client["client_secret"]
        verifier, challenge = pkce()
        code = await h.code_for(cid, challenge)
        without = await h.exchange(cid, code, verifier)
        assert without.status_code == 401
        assert without.json()["error"] == "invalid_client"
        code = await h.code_for(cid, challenge)
        response = await h.token(
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            code_verifier=verifier,
            basic=f"{cid}:{secret}",
        )
    assert response.status_code == 200, response.text


async def test_user_with_totp_signs_in_in_two_steps_and_the_token_says_mfa(make_harness: Any) -> None:
    async with make_harness() as h:
        secret = await enrol(h.directory, h.clock)
        client = await h.register()
        verifier, challenge = pkce()
        async with h.browser() as browser:
            response = await h.authorize(browser, client["client_id"], challenge)
            response = await h.sign_in(browser, response.headers["location"])
            assert response.status_code == 303
            page = await browser.get(response.headers["location"])
            assert 'name="code"' in page.text
            assert 'name="password"' not in page.text
            assert PASSWORD not in page.text
            form = {"request": hidden(page.text, "request"), "csrf": hidden(page.text, "csrf")}
            wrong = await browser.post("/login/otp", data={**form, "code": "000000"})
            assert wrong.status_code == 401
            right = await browser.post("/login/otp", data={**form, "code": totp_code(secret, h.clock.now)})
            assert right.status_code == 303, right.text
            query = await h.consent(browser, right.headers["location"])
        body = (await h.exchange(client["client_id"], query["code"], verifier)).json()
        token = h.verifier.verify(body["access_token"], h.resources[0])
    assert token.amr == ("pwd", "otp", "mfa")


async def test_wrong_password_and_unknown_user_get_the_same_answer(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        _, challenge = pkce()
        pages = []
        for username, password in [("alice", "wrong password here"), ("nobody", "wrong password here")]:
            async with h.browser() as browser:
                response = await h.authorize(browser, client["client_id"], challenge)
                response = await h.sign_in(browser, response.headers["location"], username, password)
                pages.append(
                    (
                        response.status_code,
                        response.text.replace(hidden(response.text, "request"), "")
                        .replace(hidden(response.text, "csrf"), "")
                        .replace(username, ""),
                    )
                )
    assert pages[0] == pages[1]
    assert pages[0][0] == 401


async def test_login_pages_forbid_framing_caching_and_scripts(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        _, challenge = pkce()
        async with h.browser() as browser:
            response = await h.authorize(browser, client["client_id"], challenge)
            page = await browser.get(response.headers["location"])
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


async def test_consent_deny_sends_access_denied_to_the_client(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        _, challenge = pkce()
        async with h.browser() as browser:
            response = await h.authorize(browser, client["client_id"], challenge)
            response = await h.sign_in(browser, response.headers["location"])
            query = await h.consent(browser, response.headers["location"], decision="deny")
    assert query == {
        "error": "access_denied",
        "error_description": "The user denied the request",
        "state": "st-1",
        "iss": h.base,
    }


async def test_a_signed_in_browser_goes_straight_to_consent(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        _, challenge = pkce()
        async with h.browser() as browser:
            response = await h.authorize(browser, client["client_id"], challenge)
            response = await h.sign_in(browser, response.headers["location"])
            await h.consent(browser, response.headers["location"])
            again = await h.authorize(browser, client["client_id"], challenge)
    assert again.status_code == 303
    assert again.headers["location"].startswith("/consent?request=")


async def test_remembered_consent_skips_the_consent_page(make_harness: Any) -> None:
    async with make_harness(remember_consent=True) as h:
        client = await h.register()
        _, challenge = pkce()
        async with h.browser() as browser:
            response = await h.authorize(browser, client["client_id"], challenge)
            response = await h.sign_in(browser, response.headers["location"])
            await h.consent(browser, response.headers["location"])
            again = await h.authorize(browser, client["client_id"], challenge)
    assert again.status_code == 303
    assert again.headers["location"].startswith(REDIRECT)
    assert "code" in query_of(again.headers["location"])


async def test_refresh_rotates_the_token_and_rereads_the_users_groups(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        verifier, challenge = pkce()
        code = await h.code_for(client["client_id"], challenge)
        first = (await h.exchange(client["client_id"], code, verifier)).json()
        await h.directory.add_to_group("alice", "ops")
        response = await h.token(
            grant_type="refresh_token", client_id=client["client_id"], refresh_token=first["refresh_token"]
        )
        assert response.status_code == 200, response.text
        second = response.json()
        token = h.verifier.verify(second["access_token"], h.resources[0])
    assert second["refresh_token"] != first["refresh_token"]
    assert token.groups == {"eng", "ops"}


async def test_refresh_for_a_disabled_user_is_refused(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        verifier, challenge = pkce()
        code = await h.code_for(client["client_id"], challenge)
        first = (await h.exchange(client["client_id"], code, verifier)).json()
        await h.directory.disable_user("alice")
        response = await h.token(
            grant_type="refresh_token", client_id=client["client_id"], refresh_token=first["refresh_token"]
        )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert h.auth.is_revoked(jti_of(first["access_token"]))  # the family's live access token too

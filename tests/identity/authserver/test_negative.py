"""The negative matrix: every request the authorization server must refuse, refused with the right error."""

from __future__ import annotations

from typing import Any

import pytest

from portico.identity.tokens import InvalidTokenError, TokenRejection
from tests.identity.authserver.conftest import REDIRECT, jti_of, pkce, query_of

pytestmark = pytest.mark.anyio

SECRET = "s3cret-for-the-reporting-job"
JOB = {
    "client_id": "reporting-job",
    "grant_types": ["client_credentials"],
    "secret": SECRET,
    "subject": "svc-reporting",
    "groups": ["reporting"],
}


@pytest.mark.parametrize(
    ("extra", "challenge", "error"),
    [
        pytest.param({}, None, "invalid_request", id="missing-pkce"),
        pytest.param({"code_challenge_method": "plain"}, "x" * 43, "invalid_request", id="plain-pkce"),
        pytest.param({"code_challenge_method": "<absent>"}, "x" * 43, "invalid_request", id="absent-method"),
        pytest.param({"response_type": "token"}, "x" * 43, "unsupported_response_type", id="implicit"),
        pytest.param({"scope": "admin"}, "x" * 43, "invalid_scope", id="unknown-scope"),
        pytest.param({"resource": "https://elsewhere.example/mcp"}, "x" * 43, "invalid_target", id="unknown-resource"),
    ],
)
async def test_bad_authorization_requests_are_redirected_back_with_an_error_state_and_iss(
    make_harness: Any, extra: dict[str, str], challenge: str | None, error: str
) -> None:
    async with make_harness() as h:
        client = await h.register()
        async with h.browser() as browser:
            response = await h.authorize(browser, client["client_id"], challenge, **extra)
    assert response.status_code == 303
    assert response.headers["location"].startswith(REDIRECT + "?")
    query = query_of(response.headers["location"])
    assert query["error"] == error
    assert query["state"] == "st-1"
    assert query["iss"] == h.base


@pytest.mark.parametrize("case", ["unregistered-client", "redirect-mismatch", "missing-redirect", "other-port-https"])
async def test_unknown_client_or_redirect_uri_gets_an_error_page_never_a_redirect(make_harness: Any, case: str) -> None:
    async with make_harness() as h:
        client = await h.register(redirect_uris=[REDIRECT, "https://app.example/cb"])
        _, challenge = pkce()
        extra = {
            "unregistered-client": {"client_id": "no-such-client"},
            "redirect-mismatch": {"redirect_uri": REDIRECT + "/evil"},
            "missing-redirect": {"redirect_uri": "<absent>"},
            "other-port-https": {"redirect_uri": "https://app.example:8443/cb"},
        }[case]
        async with h.browser() as browser:
            response = await h.authorize(browser, extra.pop("client_id", client["client_id"]), challenge, **extra)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


async def test_a_loopback_redirect_uri_may_use_any_port(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        _, challenge = pkce()
        async with h.browser() as browser:
            response = await h.authorize(
                browser, client["client_id"], challenge, redirect_uri="http://127.0.0.1:51234/callback"
            )
    assert response.headers["location"].startswith("/login?request=")


async def test_wrong_pkce_verifier_is_invalid_grant(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        _, challenge = pkce()
        other, _ = pkce()
        code = await h.code_for(client["client_id"], challenge)
        response = await h.exchange(client["client_id"], code, other)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_token_request_with_another_redirect_uri_is_invalid_grant(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register(redirect_uris=[REDIRECT, "http://127.0.0.1:9999/other"])
        verifier, challenge = pkce()
        code = await h.code_for(client["client_id"], challenge)
        response = await h.token(
            grant_type="authorization_code",
            client_id=client["client_id"],
            code=code,
            redirect_uri="http://127.0.0.1:9999/other",
            code_verifier=verifier,
        )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_token_request_for_another_resource_is_invalid_target(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        verifier, challenge = pkce()
        code = await h.code_for(client["client_id"], challenge)
        response = await h.exchange(client["client_id"], code, verifier, resource=h.resources[1])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


async def test_replayed_code_fails_and_revokes_the_tokens_issued_from_it(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        verifier, challenge = pkce()
        code = await h.code_for(client["client_id"], challenge)
        first = (await h.exchange(client["client_id"], code, verifier)).json()
        h.verifier.verify(first["access_token"], h.resources[0])
        replay = await h.exchange(client["client_id"], code, verifier)
        assert replay.status_code == 400
        assert replay.json()["error"] == "invalid_grant"
        with pytest.raises(InvalidTokenError) as err:
            h.verifier.verify(first["access_token"], h.resources[0])
        assert err.value.reason is TokenRejection.REVOKED
        refresh = await h.token(
            grant_type="refresh_token", client_id=client["client_id"], refresh_token=first["refresh_token"]
        )
    assert refresh.status_code == 400
    assert refresh.json()["error"] == "invalid_grant"


async def test_expired_code_is_invalid_grant(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        verifier, challenge = pkce()
        code = await h.code_for(client["client_id"], challenge)
        h.clock.advance(61)
        response = await h.exchange(client["client_id"], code, verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_code_presented_by_another_client_is_invalid_grant(make_harness: Any) -> None:
    async with make_harness() as h:
        client, thief = await h.register(), await h.register()
        verifier, challenge = pkce()
        code = await h.code_for(client["client_id"], challenge)
        response = await h.exchange(thief["client_id"], code, verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_token_request_from_an_unregistered_client_is_invalid_client(make_harness: Any) -> None:
    async with make_harness() as h:
        response = await h.exchange("no-such-client", "whatever", "v" * 43)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_refresh_token_reuse_revokes_the_whole_family(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        cid = client["client_id"]
        verifier, challenge = pkce()
        code = await h.code_for(cid, challenge)
        first = (await h.exchange(cid, code, verifier)).json()
        second = (await h.token(grant_type="refresh_token", client_id=cid, refresh_token=first["refresh_token"])).json()
        reuse = await h.token(grant_type="refresh_token", client_id=cid, refresh_token=first["refresh_token"])
        assert reuse.status_code == 400
        assert reuse.json()["error"] == "invalid_grant"
        newest = await h.token(grant_type="refresh_token", client_id=cid, refresh_token=second["refresh_token"])
        assert newest.status_code == 400
        assert newest.json()["error"] == "invalid_grant"
    assert h.auth.is_revoked(jti_of(second["access_token"]))


async def test_refresh_cannot_widen_the_resource(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        verifier, challenge = pkce()
        code = await h.code_for(client["client_id"], challenge)
        first = (await h.exchange(client["client_id"], code, verifier)).json()
        response = await h.token(
            grant_type="refresh_token",
            client_id=client["client_id"],
            refresh_token=first["refresh_token"],
            resource=h.resources[1],
        )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


async def test_revoked_refresh_token_no_longer_works_and_its_access_token_is_revoked(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        cid = client["client_id"]
        verifier, challenge = pkce()
        code = await h.code_for(cid, challenge)
        first = (await h.exchange(cid, code, verifier)).json()
        revoke = await h.http.post(h.url("/oauth/revoke"), data={"token": first["refresh_token"], "client_id": cid})
        assert revoke.status_code == 200
        response = await h.token(grant_type="refresh_token", client_id=cid, refresh_token=first["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert h.auth.is_revoked(jti_of(first["access_token"]))


async def test_revoked_access_token_is_refused_by_the_verifier(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        cid = client["client_id"]
        verifier, challenge = pkce()
        code = await h.code_for(cid, challenge)
        first = (await h.exchange(cid, code, verifier)).json()
        revoke = await h.http.post(h.url("/oauth/revoke"), data={"token": first["access_token"], "client_id": cid})
        assert revoke.status_code == 200
        assert h.auth.is_revoked(jti_of(first["access_token"]))
        with pytest.raises(InvalidTokenError) as err:
            h.verifier.verify(first["access_token"], h.resources[0])
    assert err.value.reason is TokenRejection.REVOKED


async def test_revoking_an_unknown_token_answers_200(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        response = await h.http.post(h.url("/oauth/revoke"), data={"token": "nope", "client_id": client["client_id"]})
    assert response.status_code == 200


async def test_revocations_reach_a_second_server_on_the_same_database(make_harness: Any) -> None:
    async with make_harness() as h, make_harness() as replica:
        client = await h.register()
        cid = client["client_id"]
        verifier, challenge = pkce()
        code = await h.code_for(cid, challenge)
        first = (await h.exchange(cid, code, verifier)).json()
        await h.http.post(h.url("/oauth/revoke"), data={"token": first["access_token"], "client_id": cid})
        assert not replica.auth.is_revoked(jti_of(first["access_token"]))
        await replica.auth.sync()
        assert replica.auth.is_revoked(jti_of(first["access_token"]))


async def test_client_credentials_issues_a_service_token(make_harness: Any) -> None:
    async with make_harness(clients=[JOB]) as h:
        response = await h.token(grant_type="client_credentials", basic=f"reporting-job:{SECRET}")
        assert response.status_code == 200, response.text
        token = h.verifier.verify(response.json()["access_token"], h.resources[0])
    assert token.subject == "svc-reporting"
    assert token.groups == {"reporting"}
    assert "refresh_token" not in response.json()


@pytest.mark.parametrize("how", ["basic", "post", "none"])
async def test_client_credentials_with_a_wrong_or_missing_secret_is_invalid_client(make_harness: Any, how: str) -> None:
    async with make_harness(clients=[JOB]) as h:
        if how == "basic":
            response = await h.token(grant_type="client_credentials", basic="reporting-job:wrong-secret-value")
        elif how == "post":
            response = await h.token(
                grant_type="client_credentials", client_id="reporting-job", client_secret="wrong-secret-value"
            )
        else:
            response = await h.token(grant_type="client_credentials", client_id="reporting-job")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_public_client_may_not_use_client_credentials(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        response = await h.token(grant_type="client_credentials", client_id=client["client_id"])
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        pytest.param({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri", id="javascript"),
        pytest.param({"redirect_uris": ["file:///etc/passwd"]}, "invalid_redirect_uri", id="file"),
        pytest.param({"redirect_uris": ["myapp://cb"]}, "invalid_redirect_uri", id="unlisted-short-scheme"),
        pytest.param({"redirect_uris": ["http://example.com/cb"]}, "invalid_redirect_uri", id="http-not-loopback"),
        pytest.param({"redirect_uris": ["https://app.example/cb#frag"]}, "invalid_redirect_uri", id="fragment"),
        pytest.param({"redirect_uris": []}, "invalid_redirect_uri", id="none"),
        pytest.param(
            {"redirect_uris": [f"https://a.example/{i}" for i in range(11)]}, "invalid_redirect_uri", id="too-many"
        ),
        pytest.param({"grant_types": ["client_credentials"]}, "invalid_client_metadata", id="cc-grant"),
        pytest.param({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata", id="method"),
        pytest.param({"client_name": "x" * 101}, "invalid_client_metadata", id="long-name"),
        pytest.param({"response_types": ["token"]}, "invalid_client_metadata", id="implicit"),
    ],
)
async def test_bad_registrations_are_refused(make_harness: Any, metadata: dict[str, Any], error: str) -> None:
    async with make_harness() as h:
        body = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", **metadata}
        response = await h.http.post(h.url("/oauth/register"), json=body)
    assert response.status_code == 400
    assert response.json()["error"] == error


@pytest.mark.parametrize(
    "uri",
    ["cursor://anysphere.cursor-mcp/oauth/callback", "vscode://vscode.mcp/callback", "com.example.app:/oauth/cb"],
)
async def test_native_apps_may_register_their_private_use_redirect_schemes(make_harness: Any, uri: str) -> None:
    async with make_harness() as h:
        body = {"redirect_uris": [uri], "token_endpoint_auth_method": "none"}
        response = await h.http.post(h.url("/oauth/register"), json=body)
    assert response.status_code == 201, response.text
    assert response.json()["redirect_uris"] == [uri]


async def test_oversized_registration_body_is_refused(make_harness: Any) -> None:
    async with make_harness() as h:
        response = await h.http.post(h.url("/oauth/register"), json={"redirect_uris": [REDIRECT], "junk": "x" * 20_000})
    assert response.status_code == 413


async def test_a_form_post_without_the_csrf_token_is_refused(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        _, challenge = pkce()
        async with h.browser() as browser:
            response = await h.authorize(browser, client["client_id"], challenge)
            request_id = query_of(response.headers["location"])["request"]
            post = await browser.post(
                "/login", data={"request": request_id, "csrf": "forged", "username": "alice", "password": "x"}
            )
    assert post.status_code == 403


async def test_a_pending_request_cannot_be_continued_from_another_browser(make_harness: Any) -> None:
    async with make_harness() as h:
        client = await h.register()
        _, challenge = pkce()
        async with h.browser() as browser, h.browser() as other:
            response = await h.authorize(browser, client["client_id"], challenge)
            page = await other.get(response.headers["location"])
    assert page.status_code == 403

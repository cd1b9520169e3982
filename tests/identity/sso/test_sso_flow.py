"""Signing in through a real (test) OIDC issuer on loopback, every hop over HTTP: the happy paths and the IdP
quirks Portico must live with (Entra ID, Okta)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.identity.sso.support import (
    PROVIDER,
    back_from_idp,
    browser,
    provider_settings,
    refusal,
    running_gateway,
    sign_in,
    to_idp,
)
from tests.support.oidc_issuer import OidcIssuer
from tests.support.portico import free_port

pytestmark = pytest.mark.anyio


async def test_signing_in_maps_idp_groups_to_portico_groups(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer, group_map={"g-eng": "eng"}) as gw, browser() as client:
        response = await sign_in(client, gw, "req-42")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request"] == "req-42"
    assert body["subject"] == f"{PROVIDER}:00u-alice"
    assert body["username"] == "alice@example.com"
    assert body["groups"] == ["eng"]  # g-everyone is not mapped: dropped
    assert body["idp"] == PROVIDER
    assert body["display_name"] == "Alice Example"
    assert body["extra"] == {"email": "alice@example.com"}


@pytest.mark.requirement("sso:pkce-state-nonce")
async def test_the_authorization_request_carries_pkce_s256_state_and_nonce(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer) as gw, browser() as client:
        assert (await sign_in(client, gw)).status_code == 200
    [authorize] = issuer.sent("/authorize")
    assert authorize["response_type"] == "code"
    assert authorize["code_challenge_method"] == "S256"
    assert len(authorize["code_challenge"]) == 43
    assert len(authorize["state"]) >= 43
    assert len(authorize["nonce"]) >= 43
    assert authorize["redirect_uri"] == gw.sso.redirect_uri(PROVIDER)
    assert authorize["scope"].split() == ["openid", "profile", "email"]
    assert "resource" not in authorize
    [token] = issuer.sent("/token")
    assert token["auth"] == "client_secret_basic"
    assert token["grant_type"] == "authorization_code"
    assert "code_verifier" in token
    assert "resource" not in token


async def test_client_secret_post_sends_the_secret_in_the_body(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer, token_endpoint_auth_method="client_secret_post") as gw, browser() as client:
        assert (await sign_in(client, gw)).status_code == 200
    assert [t["auth"] for t in issuer.sent("/token")] == ["client_secret_post"]


async def test_extra_authorize_params_are_sent_to_the_idp(issuer: OidcIssuer) -> None:
    extra: dict[str, Any] = {"domain_hint": "example.com", "prompt": "select_account", "idp": "0oa-saml"}
    async with running_gateway(issuer, extra_authorize_params=extra) as gw, browser() as client:
        assert (await sign_in(client, gw)).status_code == 200
    [authorize] = issuer.sent("/authorize")
    assert {k: authorize[k] for k in extra} == extra


async def test_roles_claim_can_stand_in_for_groups(issuer: OidcIssuer) -> None:
    issuer.user.roles = ["Portico.Admin", "Portico.Reader"]
    settings: dict[str, Any] = {"groups_claim": "roles", "group_map": {"Portico.Admin": "admins", "g-eng": "eng"}}
    async with running_gateway(issuer, **settings) as gw, browser() as client:
        body = (await sign_in(client, gw)).json()
    assert body["groups"] == ["admins"]  # roles only: the `groups` claim is not read


async def test_a_custom_groups_claim_name_is_read(issuer: OidcIssuer) -> None:
    issuer.groups_claim = "https://example.com/claims/groups"
    settings: dict[str, Any] = {"groups_claim": "https://example.com/claims/groups", "group_map": {"g-eng": "eng"}}
    async with running_gateway(issuer, **settings) as gw, browser() as client:
        assert (await sign_in(client, gw)).json()["groups"] == ["eng"]


async def test_unmapped_groups_are_dropped_unless_passed_through(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer, group_map={"g-eng": "eng"}) as gw, browser() as client:
        assert (await sign_in(client, gw)).json()["groups"] == ["eng"]
    settings: dict[str, Any] = {"group_map": {"g-eng": "eng"}, "pass_unmapped_groups": True}
    async with running_gateway(issuer, **settings) as gw, browser() as client:
        assert (await sign_in(client, gw)).json()["groups"] == ["eng", "g-everyone"]


@pytest.mark.requirement("sso:allowed-groups")
async def test_sign_in_is_refused_outside_allowed_groups(issuer: OidcIssuer) -> None:
    settings: dict[str, Any] = {"group_map": {"g-eng": "eng", "g-ops": "ops"}, "allowed_groups": ["ops"]}
    async with running_gateway(issuer, **settings) as gw, browser() as client:
        response = await sign_in(client, gw)
        assert response.status_code == 403
        assert refusal(response) == "group_not_allowed"
        assert gw.logins == []
    issuer.user.groups = ["g-ops"]
    async with running_gateway(issuer, **settings) as gw, browser() as client:
        assert (await sign_in(client, gw)).json()["groups"] == ["ops"]


async def test_okta_style_groups_arrive_only_when_the_groups_scope_is_requested(issuer: OidcIssuer) -> None:
    issuer.groups_need_scope = True
    async with running_gateway(issuer, group_map={"g-eng": "eng"}) as gw, browser() as client:
        assert (await sign_in(client, gw)).json()["groups"] == []
    scopes = ["openid", "profile", "email", "groups"]
    async with running_gateway(issuer, scopes=scopes, group_map={"g-eng": "eng"}) as gw, browser() as client:
        assert (await sign_in(client, gw)).json()["groups"] == ["eng"]


async def test_entra_oid_can_be_the_subject_and_the_prefix_can_be_dropped(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer, subject_claim="oid") as gw, browser() as client:
        assert (await sign_in(client, gw)).json()["subject"] == f"{PROVIDER}:3f0c-alice-oid"
    async with running_gateway(issuer, subject_prefix="") as gw, browser() as client:
        assert (await sign_in(client, gw)).json()["subject"] == "00u-alice"


async def test_username_falls_back_to_email(issuer: OidcIssuer) -> None:
    issuer.user.preferred_username = None
    issuer.user.email = "a.example@example.com"
    async with running_gateway(issuer) as gw, browser() as client:
        assert (await sign_in(client, gw)).json()["username"] == "a.example@example.com"


async def test_userinfo_fills_in_claims_the_id_token_lacks(issuer: OidcIssuer) -> None:
    issuer.user.name = None
    issuer.user.userinfo_only = {"name": "Alice From Userinfo"}
    async with running_gateway(issuer) as gw, browser() as client:
        assert (await sign_in(client, gw)).json()["display_name"] is None
    async with running_gateway(issuer, use_userinfo=True) as gw, browser() as client:
        assert (await sign_in(client, gw)).json()["display_name"] == "Alice From Userinfo"


# --- group overage (Entra ID) ---


@pytest.mark.requirement("sso:overage-fails-closed")
async def test_group_overage_is_refused_by_default(issuer: OidcIssuer) -> None:
    issuer.overage = "claim_sources"
    async with running_gateway(issuer, group_map={"g-eng": "eng"}) as gw, browser() as client:
        response = await sign_in(client, gw)
    assert response.status_code == 403
    assert refusal(response) == "groups_overage"
    assert issuer.sent("/graph/getMemberObjects") == []


async def test_group_overage_fetch_reads_the_claim_source_endpoint(issuer: OidcIssuer) -> None:
    issuer.overage = "claim_sources"
    settings: dict[str, Any] = {"groups_overage": "fetch", "group_map": {"g-eng": "eng"}, "allowed_groups": ["eng"]}
    async with running_gateway(issuer, **settings) as gw, browser() as client:
        assert (await sign_in(client, gw)).json()["groups"] == ["eng"]
    assert issuer.sent("/graph/getMemberObjects") == [{"oid": "3f0c-alice-oid"}]


async def test_group_overage_fetch_follows_graph_pages_of_the_groups_endpoint(issuer: OidcIssuer) -> None:
    issuer.overage = "hasgroups"
    issuer.user.groups = [f"g{i}" for i in range(5)]
    settings: dict[str, Any] = {
        "groups_overage": "fetch",
        "groups_endpoint": f"{issuer.issuer}/graph/me/memberOf",
        "pass_unmapped_groups": True,
    }
    async with running_gateway(issuer, **settings) as gw, browser() as client:
        body = (await sign_in(client, gw)).json()
    assert body["groups"] == ["g0", "g1", "g2", "g3", "g4"]  # the directory role on page 1 is not a group
    assert [p["skip"] for p in issuer.sent("/graph/memberOf")] == ["0", "2", "4"]


@pytest.mark.requirement("sso:token-host-allowlist")
async def test_group_overage_fetch_never_sends_the_token_to_an_unlisted_host(issuer: OidcIssuer) -> None:
    issuer.overage = "claim_sources"
    issuer.claim_source_base = f"http://localhost:{issuer.port}"  # same server, but not the issuer's host
    async with running_gateway(issuer, groups_overage="fetch") as gw, browser() as client:
        response = await sign_in(client, gw)
    assert refusal(response) == "groups_fetch_host_not_allowed"
    assert issuer.sent("/graph/getMemberObjects") == []


async def test_group_overage_ignore_signs_in_without_groups(issuer: OidcIssuer) -> None:
    issuer.overage = "hasgroups"
    async with running_gateway(issuer, groups_overage="ignore", group_map={"g-eng": "eng"}) as gw, browser() as c:
        assert (await sign_in(c, gw)).json()["groups"] == []


# --- RFC 8707 resource (Entra ID v2 rejects it) ---


async def test_an_entra_like_issuer_rejects_the_resource_parameter_when_it_is_sent(issuer: OidcIssuer) -> None:
    issuer.reject_resource = True
    async with running_gateway(issuer, send_resource=True) as gw, browser() as client:
        response = await sign_in(client, gw)
    assert response.status_code == 400
    assert refusal(response) == "idp_error"
    assert "invalid_target" in response.text
    assert issuer.sent("/authorize")[0]["resource"] == gw.base


async def test_the_same_issuer_signs_in_when_resource_is_not_sent(issuer: OidcIssuer) -> None:
    issuer.reject_resource = True
    async with running_gateway(issuer) as gw, browser() as client:
        assert (await sign_in(client, gw)).status_code == 200


async def test_resource_is_sent_to_issuers_that_accept_it(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer, send_resource=True) as gw, browser() as client:
        assert (await sign_in(client, gw)).status_code == 200
    assert issuer.sent("/token")[0]["resource"] == gw.base


# --- amr and acr ---


@pytest.mark.requirement("sso:id-token-verified")
@pytest.mark.parametrize(
    ("amr", "mfa"),
    [(["pwd", "mfa"], True), (["pwd", "otp"], True), (["hwk"], True), (["pwd"], False), (None, False)],
)
async def test_amr_from_the_idp_decides_mfa(issuer: OidcIssuer, amr: list[str] | None, mfa: bool) -> None:
    issuer.user.amr = amr
    async with running_gateway(issuer) as gw, browser() as client:
        body = (await sign_in(client, gw)).json()
    assert body["mfa"] is mfa
    assert body["amr"] == (amr or [])


async def test_amr_is_not_trusted_when_mfa_from_amr_is_off(issuer: OidcIssuer) -> None:
    issuer.user.amr = ["pwd", "mfa"]
    async with running_gateway(issuer, mfa_from_amr=False) as gw, browser() as client:
        body = (await sign_in(client, gw)).json()
    assert (body["amr"], body["mfa"]) == ([], False)


async def test_acr_values_are_requested_and_required(issuer: OidcIssuer) -> None:
    settings: dict[str, Any] = {"acr_values": ["urn:example:mfa"]}
    async with running_gateway(issuer, **settings) as gw, browser() as client:
        response = await sign_in(client, gw)
        assert refusal(response) == "id_token_acr"
    assert issuer.sent("/authorize")[0]["acr_values"] == "urn:example:mfa"
    issuer.user.acr = "urn:example:mfa"
    async with running_gateway(issuer, **settings) as gw, browser() as client:
        assert (await sign_in(client, gw)).status_code == 200


# --- bad ID tokens ---


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("wrong_aud", "id_token_audience"),
        ("extra_aud_no_azp", "id_token_azp"),
        ("expired", "id_token_expired"),
        ("bad_signature", "id_token_signature"),
        ("wrong_nonce", "id_token_nonce"),
        ("wrong_issuer", "id_token_issuer"),
        ("unknown_kid", "id_token_unknown_key"),
    ],
)
async def test_a_bad_id_token_is_refused(issuer: OidcIssuer, fault: str, reason: str) -> None:
    issuer.fault = fault
    async with running_gateway(issuer) as gw, browser() as client:
        response = await sign_in(client, gw)
        assert response.status_code == 502
        assert refusal(response) == reason
        assert gw.logins == []
    assert "eyJ" not in response.text  # no token echoed
    assert "Traceback" not in response.text


async def test_a_rotated_signing_key_is_fetched_when_an_unknown_kid_arrives(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer, jwks_refresh_min_interval_s=0) as gw, browser() as client:
        assert (await sign_in(client, gw)).status_code == 200
        issuer.rotate_key()
        assert (await sign_in(client, gw, "req-2")).status_code == 200
    assert issuer.jwks_reads == 2


async def test_unknown_kids_do_not_make_portico_hammer_the_jwks(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer) as gw, browser() as client:  # default: one re-read a minute at most
        assert (await sign_in(client, gw)).status_code == 200
        issuer.fault = "unknown_kid"
        for i in range(3):
            assert refusal(await sign_in(client, gw, f"req-{i}")) == "id_token_unknown_key"
    assert issuer.jwks_reads == 1


# --- discovery, IdP errors, bad links ---


@pytest.mark.requirement("sso:issuer-exact")
async def test_a_discovery_document_naming_another_issuer_is_refused(issuer: OidcIssuer) -> None:
    issuer.discovery_issuer = issuer.issuer + "/"  # even a trailing slash is a different issuer
    async with running_gateway(issuer) as gw, browser() as client:
        response = await client.get(gw.start_url())
    assert response.status_code == 502
    assert refusal(response) == "discovery_issuer_mismatch"
    assert issuer.sent("/authorize") == []


async def test_an_unreachable_idp_is_shown_as_such(issuer: OidcIssuer) -> None:
    nowhere = provider_settings(issuer, issuer=f"http://127.0.0.1:{free_port()}")
    async with running_gateway(issuer, nowhere) as gw, browser() as client:
        response = await client.get(gw.start_url())
    assert (response.status_code, refusal(response)) == (502, "discovery_failed")


@pytest.mark.requirement("sso:no-echo")
async def test_idp_access_denied_is_shown_cleanly(issuer: OidcIssuer) -> None:
    issuer.deny = True
    async with running_gateway(issuer) as gw, browser() as client:
        response = await sign_in(client, gw)
        assert gw.logins == []
    assert response.status_code == 400
    assert refusal(response) == "idp_error"
    assert "(access_denied)" in response.text
    assert "said no" not in response.text  # the IdP's description is not echoed
    assert response.headers["cache-control"] == "no-store"


async def test_an_unknown_idp_error_code_is_not_echoed(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer) as gw, browser() as client:
        start = await to_idp(client, gw)
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        callback = f"{gw.sso.redirect_uri(PROVIDER)}?error=%3Cscript%3E&state={state}"
        response = await client.get(callback)
    assert refusal(response) == "idp_error"
    assert "<script>" not in response.text


@pytest.mark.parametrize("query", ["", "?request=", "?request=%3Cscript%3E", "?request=" + "a" * 300])
async def test_a_sign_in_link_without_a_valid_request_id_is_refused(issuer: OidcIssuer, query: str) -> None:
    async with running_gateway(issuer) as gw, browser() as client:
        response = await client.get(f"{gw.base}/login/sso/{PROVIDER}{query}")
    assert (response.status_code, refusal(response)) == (400, "bad_request")
    assert "<script>" not in response.text


async def test_an_unknown_provider_is_not_found(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer) as gw, browser() as client:
        response = await client.get(f"{gw.base}/login/sso/nope?request=r1")
    assert (response.status_code, refusal(response)) == (404, "unknown_provider")


async def test_a_request_the_authorization_server_refuses_is_shown_with_its_message(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer) as gw, browser() as client:
        response = await sign_in(client, gw, "expired-request")
    assert (response.status_code, refusal(response)) == (400, "login_rejected")
    assert "That sign-in request has expired." in response.text


async def test_several_providers_get_their_own_links_and_subjects(issuer: OidcIssuer) -> None:
    first = provider_settings(issuer, id="okta", display_name="Okta")
    second = provider_settings(issuer, id="entra", display_name="Entra ID")
    async with running_gateway(issuer, first, second) as gw, browser() as client:
        links = gw.sso.links("req/1")
        assert [(link.id, link.display_name) for link in links] == [("okta", "Okta"), ("entra", "Entra ID")]
        assert links[1].url == f"{gw.base}/login/sso/entra?request=req%2F1"
        start = await client.get(f"{gw.base}/login/sso/entra?request=req-9")
        body = (await client.get((await back_from_idp(client, start)).headers["location"])).json()
    assert (body["subject"], body["idp"], body["request"]) == ("entra:00u-alice", "entra", "req-9")


async def test_a_callback_naming_another_issuer_is_refused(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer) as gw, browser() as client:
        callback = (await back_from_idp(client, await to_idp(client, gw))).headers["location"]
        assert f"iss={quote(issuer.issuer, safe='')}" in callback  # RFC 9207: the issuer says who it is
        response = await client.get(callback.replace(quote(issuer.issuer, safe=""), "https%3A%2F%2Fevil.example"))
        assert refusal(response) == "response_issuer"
        assert gw.logins == []


async def test_a_wrong_client_secret_fails_the_code_exchange(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer, client_secret="wrong") as gw, browser() as client:
        response = await sign_in(client, gw)
    assert (response.status_code, refusal(response)) == (502, "token_exchange_failed")
    assert "wrong" not in response.text


@pytest.mark.parametrize("method", ["POST", "HEAD", "PUT"])
async def test_sso_endpoints_answer_get_only(issuer: OidcIssuer, method: str) -> None:
    async with running_gateway(issuer) as gw, browser() as client:
        for url in (gw.start_url(), gw.sso.redirect_uri(PROVIDER) + "?state=s&code=c"):
            response = await client.request(method, url)
            assert response.status_code == 405
            assert response.headers["allow"] == "GET"

"""One sign-in through an IdP, as two steps around the browser's trip: `begin` (the authorization URL and the
state to keep) and `complete` (code → tokens → verified ID token → claims → `LoginIdentity`).

Sits under `app` (which handles HTTP, cookies and audit) and over `provider` (metadata, keys), `idtoken`,
`claims` and authlib. authlib is used for the OAuth 2.0 client pieces only — building the authorization URL,
the PKCE S256 challenge, the token request body and client authentication (`client_secret_basic`/`_post`) —
as stateless functions over Portico's one shared httpx2 client. Its stateful clients (`starlette_client`,
`AsyncOAuth2Client`) would need Starlette sessions and a new HTTP client (and TLS context) per sign-in; ID
token verification is done with joserfc directly (see `idtoken`), as the rest of Portico's JWT handling is.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.oauth2.auth import ClientAuth  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
    prepare_grant_uri,
    prepare_token_request,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]

from portico.identity.login import LoginIdentity
from portico.identity.sso import claims as claim_map
from portico.identity.sso.errors import SsoError, SsoFailure
from portico.identity.sso.idtoken import Expected, check_id_token, read_header
from portico.identity.sso.provider import OidcProvider, fetch_json
from portico.identity.sso.state import PendingSignIn

MAX_GROUP_PAGES = 50


@dataclass(frozen=True, slots=True)
class Begun:
    """Where to send the browser, and what to keep until it comes back."""

    authorization_url: str
    pending: PendingSignIn


async def begin(
    provider: OidcProvider, *, redirect_uri: str, request_id: str, resource: str, now: float, ttl_s: float
) -> Begun:
    """A fresh state, nonce and PKCE verifier, and the IdP authorization URL carrying them.

    Raises:
        SsoError: `DISCOVERY_FAILED` or `DISCOVERY_ISSUER_MISMATCH`.
    """
    settings = provider.settings
    metadata = await provider.metadata()
    pending = PendingSignIn(
        provider=settings.id,
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),  # 86 characters of the RFC 7636 alphabet
        request_id=request_id,
        expires_at=now + ttl_s,
    )
    params: dict[str, str] = dict(settings.extra_authorize_params)
    params.update(
        nonce=pending.nonce,
        code_challenge=create_s256_code_challenge(pending.code_verifier),
        code_challenge_method="S256",
    )
    if settings.acr_values:
        params["acr_values"] = " ".join(settings.acr_values)
    if settings.send_resource:
        params["resource"] = resource
    url = prepare_grant_uri(
        metadata.authorization_endpoint,
        client_id=settings.client_id,
        response_type="code",
        redirect_uri=redirect_uri,
        scope=settings.scopes,
        state=pending.state,
        **params,
    )
    return Begun(str(url), pending)


async def complete(
    provider: OidcProvider,
    http: httpx2.AsyncClient,
    pending: PendingSignIn,
    *,
    code: str,
    redirect_uri: str,
    resource: str,
    now: float,
) -> LoginIdentity:
    """The identity the IdP vouches for in exchange for `code`.

    Raises:
        SsoError: any reason from the token exchange onwards; `subject` is set on it once the ID token is valid.
    """
    settings = provider.settings
    metadata = await provider.metadata()
    tokens = await _exchange(provider, http, pending, code, redirect_uri, resource, metadata.token_endpoint)
    id_token, access_token = tokens["id_token"], tokens["access_token"]
    _, kid = read_header(id_token, metadata.id_token_algs)
    key = await provider.signing_key(kid)
    expected = Expected(
        issuer=metadata.issuer,
        client_id=settings.client_id,
        nonce=pending.nonce,
        algorithms=metadata.id_token_algs,
        skew_s=settings.clock_skew_s,
        acr_values=settings.acr_values,
    )
    claims = check_id_token(id_token, key, expected, now)
    subject_value = claims.get(settings.subject_claim)
    subject = settings.subject_namespace + subject_value if isinstance(subject_value, str) else None
    try:
        if settings.use_userinfo and metadata.userinfo_endpoint:
            claims = await _merge_userinfo(provider, http, metadata.userinfo_endpoint, access_token, claims)
        groups = await _groups(provider, http, claims, access_token)
        return claim_map.build_identity(settings, claims, groups)
    except SsoError as exc:
        exc.subject = subject
        raise


async def _exchange(
    provider: OidcProvider,
    http: httpx2.AsyncClient,
    pending: PendingSignIn,
    code: str,
    redirect_uri: str,
    resource: str,
    token_endpoint: str,
) -> dict[str, str]:
    settings = provider.settings
    extra = {"resource": resource} if settings.send_resource else {}
    body = prepare_token_request(
        "authorization_code", redirect_uri=redirect_uri, code=code, code_verifier=pending.code_verifier, **extra
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    auth = ClientAuth(settings.client_id, settings.client_secret, settings.token_endpoint_auth_method)
    _, headers, body = auth.prepare("POST", token_endpoint, headers, body)
    status, doc = await fetch_json(
        http,
        "POST",
        token_endpoint,
        failure=SsoFailure.TOKEN_EXCHANGE_FAILED,
        timeout_s=settings.timeout_s,
        accept_error_body=True,
        headers=headers,
        content=str(body).encode(),
    )
    if not isinstance(doc, dict):
        raise SsoError(SsoFailure.TOKEN_EXCHANGE_FAILED, detail="token response is not an object")
    if status >= 400 or "error" in doc:
        error = doc.get("error")
        raise SsoError(SsoFailure.TOKEN_EXCHANGE_FAILED, detail=f"token endpoint error {str(error)[:64]!r}")
    id_token, access_token = doc.get("id_token"), doc.get("access_token")
    if not isinstance(id_token, str) or not isinstance(access_token, str):
        raise SsoError(SsoFailure.TOKEN_EXCHANGE_FAILED, detail="token response lacks id_token or access_token")
    if str(doc.get("token_type", "")).lower() != "bearer":
        raise SsoError(SsoFailure.TOKEN_EXCHANGE_FAILED, detail="token_type is not Bearer")
    return {"id_token": id_token, "access_token": access_token}


async def _merge_userinfo(
    provider: OidcProvider, http: httpx2.AsyncClient, endpoint: str, access_token: str, claims: dict[str, Any]
) -> dict[str, Any]:
    """ID token claims, with what only userinfo has filled in (OIDC Core §5.3.2: `sub` must match)."""
    _, info = await fetch_json(
        http,
        "GET",
        endpoint,
        failure=SsoFailure.USERINFO_FAILED,
        timeout_s=provider.settings.timeout_s,
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )
    if not isinstance(info, dict) or info.get("sub") != claims.get("sub"):
        raise SsoError(SsoFailure.USERINFO_FAILED, detail="userinfo is not an object or its sub differs")
    return {**info, **claims}


async def _groups(
    provider: OidcProvider, http: httpx2.AsyncClient, claims: Mapping[str, Any], access_token: str
) -> list[str]:
    settings = provider.settings
    overage = claim_map.find_overage(claims, settings.groups_claim)
    if overage is None:
        return claim_map.read_groups(claims, settings.groups_claim)
    if settings.groups_overage == "deny":
        raise SsoError(SsoFailure.GROUPS_OVERAGE)
    if settings.groups_overage == "ignore":
        return []
    if settings.groups_endpoint:
        return await _fetch_groups(provider, http, settings.groups_endpoint, access_token, post=False)
    if overage.endpoint:
        return await _fetch_groups(provider, http, overage.endpoint, access_token, post=True)
    raise SsoError(SsoFailure.GROUPS_FETCH_FAILED, detail="overage without an endpoint and no groups_endpoint")


async def _fetch_groups(
    provider: OidcProvider, http: httpx2.AsyncClient, url: str, access_token: str, *, post: bool
) -> list[str]:
    """Groups from a Graph-style endpoint, following `@odata.nextLink`; the token goes to allowlisted hosts only."""
    settings = provider.settings
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    groups: list[str] = []
    next_url: str | None = url
    for _ in range(MAX_GROUP_PAGES):
        if next_url is None:
            return groups[: claim_map.MAX_GROUPS]
        if not settings.may_send_token_to(next_url):
            raise SsoError(SsoFailure.GROUPS_FETCH_HOST_NOT_ALLOWED, detail="group endpoint host not allowlisted")
        options: dict[str, Any] = {"json": {"securityEnabledOnly": False}} if post else {}
        _, doc = await fetch_json(
            http,
            "POST" if post else "GET",
            next_url,
            failure=SsoFailure.GROUPS_FETCH_FAILED,
            timeout_s=settings.timeout_s,
            headers=headers,
            **options,
        )
        page, next_url = claim_map.parse_group_page(doc)
        groups.extend(page)
        post = False  # next links are plain GETs
    raise SsoError(SsoFailure.GROUPS_FETCH_FAILED, detail=f"more than {MAX_GROUP_PAGES} pages of groups")

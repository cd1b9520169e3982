"""A small but real OpenID Connect provider for tests, served by uvicorn on a loopback port.

It speaks the authorization code flow the way real IdPs do — discovery, JWKS, `/authorize` (auto-approves its
one configured user; PKCE S256 required; state and nonce honoured), `/token` (code → RS256 ID token + opaque
access token; checks the client secret, the redirect URI and the PKCE verifier; codes are single-use),
`/userinfo`, and a Graph-like group endpoint — and has knobs for the quirks of real IdPs:

* `reject_resource`: an RFC 8707 `resource` parameter is an error at /authorize and /token (Entra ID v2);
* `overage`: `"claim_sources"` (Entra code flow: `_claim_names`/`_claim_sources` pointing at this issuer's
  `/graph/users/<oid>/getMemberObjects`) or `"hasgroups"`; the groups are then served by `/graph/…` only;
* `groups_need_scope`: the groups claim is sent only when the `groups` scope was asked for (Okta);
* `groups_claim`: the name of the groups claim (custom claim names); the user's `roles` go in `roles`;
* `fault`: one broken ID token — `wrong_aud`, `expired`, `bad_signature`, `wrong_nonce`, `wrong_issuer`,
  `unknown_kid`, `extra_aud_no_azp`;
* `claim_source_base`: put the `_claim_sources` endpoint on another origin (a host Portico must not trust);
* `discovery_issuer`: what discovery claims the issuer is (a mismatch), `deny`: answer `error=access_denied`.

There is no dynamic client registration (`/register` is 404), as with Entra ID and most enterprise IdPs.
`requests` records what arrived (path and parameters, never the secret) so tests can check what was sent.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import anyio
import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.portico import free_port
from tests.support.waits import eventually


@dataclass
class IdpUser:
    sub: str = "00u-alice"
    oid: str = "3f0c-alice-oid"
    preferred_username: str | None = "alice@example.com"
    email: str | None = "alice@example.com"
    name: str | None = "Alice Example"
    groups: list[str] = field(default_factory=lambda: ["g-eng", "g-everyone"])
    roles: list[str] = field(default_factory=list)
    amr: list[str] | None = field(default_factory=lambda: ["pwd"])
    acr: str | None = None
    extra_claims: dict[str, Any] = field(default_factory=dict)
    userinfo_only: dict[str, Any] = field(default_factory=dict)  # claims /userinfo has and the ID token lacks


@dataclass
class _Grant:
    scope: list[str]
    nonce: str | None
    challenge: str
    redirect_uri: str
    resource: str | None


@dataclass
class OidcIssuer:
    client_id: str = "portico-test"
    client_secret: str = "s3cret-!:value"
    redirect_uris: list[str] = field(default_factory=list)
    user: IdpUser = field(default_factory=IdpUser)
    reject_resource: bool = False
    overage: str | None = None
    groups_need_scope: bool = False
    groups_claim: str = "groups"
    fault: str | None = None
    discovery_issuer: str | None = None
    deny: bool = False
    page_size: int = 2
    claim_source_base: str | None = None  # where `_claim_sources` points (default: this issuer)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    jwks_reads: int = 0
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
        self._codes: dict[str, _Grant] = {}
        self._access: dict[str, list[str]] = {}  # access token → the scopes granted
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
                Route("/userinfo", self._userinfo),
                Route("/graph/users/{oid}/getMemberObjects", self._member_objects, methods=["POST"]),
                Route("/graph/me/memberOf", self._member_of),
            ]
        )

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rotate_key(self) -> None:
        """A new signing key with a new kid; the JWKS publishes only the new one."""
        kid = f"k{secrets.token_hex(3)}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})

    def sent(self, path: str) -> list[dict[str, str]]:
        return [params for p, params in self.requests if p == path]

    # --- endpoints ---

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.discovery_issuer or self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "scopes_supported": ["openid", "profile", "email", "groups"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        self.jwks_reads += 1
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def _authorize(self, request: Request) -> Response:
        q = dict(request.query_params)
        self.requests.append(("/authorize", q))
        if q.get("client_id") != self.client_id or q.get("redirect_uri") not in self.redirect_uris:
            return Response("unknown client or redirect_uri", status_code=400)  # never redirect to an unknown URI
        redirect, state = q["redirect_uri"], q.get("state")

        def back(**params: str) -> Response:
            if state is not None:
                params["state"] = state
            return RedirectResponse(f"{redirect}?{urlencode(params)}", status_code=302)

        if "resource" in q and self.reject_resource:
            return back(error="invalid_target", error_description="AADSTS901002: resource is not supported")
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 required")
        if "openid" not in q.get("scope", "").split():
            return back(error="invalid_scope")
        if self.deny:
            return back(error="access_denied", error_description="The user <b>said no</b>")
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Grant(q["scope"].split(), q.get("nonce"), q["code_challenge"], redirect, q.get("resource"))
        return back(code=code, iss=self.issuer)

    async def _token(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        client_id, secret, method = self._client_auth(request, form)
        self.requests.append(("/token", {**{k: v for k, v in form.items() if k != "client_secret"}, "auth": method}))
        if client_id != self.client_id or secret != self.client_secret:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if "resource" in form and self.reject_resource:
            return JSONResponse({"error": "invalid_target"}, status_code=400)
        grant = self._codes.pop(str(form.get("code", "")), None)  # single use
        if form.get("grant_type") != "authorization_code" or grant is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("redirect_uri") != grant.redirect_uri:
            return JSONResponse({"error": "invalid_grant", "error_description": "redirect_uri"}, status_code=400)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or challenge != grant.challenge:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
        access = secrets.token_urlsafe(24)
        self._access[access] = grant.scope
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": " ".join(grant.scope),
                "id_token": self._id_token(grant),
            },
            headers={"Cache-Control": "no-store"},
        )

    async def _userinfo(self, request: Request) -> Response:
        scope = self._bearer(request)
        if scope is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        claims = {**self._profile_claims(scope, overage_ok=True), **self.user.userinfo_only}
        return JSONResponse({"sub": self.user.sub, **claims})

    async def _member_objects(self, request: Request) -> Response:
        if self._bearer(request) is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        self.requests.append(("/graph/getMemberObjects", {"oid": request.path_params["oid"]}))
        return JSONResponse({"value": list(self.user.groups)})

    async def _member_of(self, request: Request) -> Response:
        if self._bearer(request) is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        skip = int(request.query_params.get("$skip", "0"))
        self.requests.append(("/graph/memberOf", {"skip": str(skip)}))
        page = [
            {"@odata.type": "#microsoft.graph.group", "id": g} for g in self.user.groups[skip : skip + self.page_size]
        ]
        if skip == 0:
            page.append({"@odata.type": "#microsoft.graph.directoryRole", "id": "role-not-a-group"})
        body: dict[str, Any] = {"value": page}
        if skip + self.page_size < len(self.user.groups):
            body["@odata.nextLink"] = f"{self.issuer}/graph/me/memberOf?$skip={skip + self.page_size}"
        return JSONResponse(body)

    # --- helpers ---

    def _client_auth(self, request: Request, form: dict[str, Any]) -> tuple[str | None, str | None, str]:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            raw = base64.b64decode(header[6:]).decode()
            client_id, _, secret = raw.partition(":")
            return client_id, secret, "client_secret_basic"
        return form.get("client_id"), form.get("client_secret"), "client_secret_post"

    def _bearer(self, request: Request) -> list[str] | None:
        header = request.headers.get("authorization", "")
        return self._access.get(header[7:]) if header.startswith("Bearer ") else None

    def _profile_claims(self, scope: list[str], *, overage_ok: bool = False) -> dict[str, Any]:
        user = self.user
        claims: dict[str, Any] = {"oid": user.oid}
        for name in ("preferred_username", "email", "name"):
            if getattr(user, name) is not None:
                claims[name] = getattr(user, name)
        if (not self.groups_need_scope or "groups" in scope) and (self.overage is None or overage_ok):
            claims[self.groups_claim] = list(user.groups)
        if user.roles:
            claims["roles"] = list(user.roles)
        return {**claims, **user.extra_claims}

    def _id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.user.sub,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            **self._profile_claims(grant.scope),
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        if self.user.amr is not None:
            claims["amr"] = list(self.user.amr)
        if self.user.acr is not None:
            claims["acr"] = self.user.acr
        if self.overage == "claim_sources":
            claims["_claim_names"] = {"groups": "src1"}
            claims["_claim_sources"] = {
                "src1": {
                    "endpoint": f"{self.claim_source_base or self.issuer}/graph/users/{self.user.oid}/getMemberObjects"
                }
            }
        elif self.overage == "hasgroups":
            claims["hasgroups"] = True
        key = self.key
        match self.fault:
            case "wrong_aud":
                claims["aud"] = "someone-else"
            case "extra_aud_no_azp":
                claims["aud"] = [self.client_id, "someone-else"]
            case "expired":
                claims["iat"], claims["exp"] = now - 7200, now - 3600
            case "wrong_nonce":
                claims["nonce"] = "not-the-nonce"
            case "wrong_issuer":
                claims["iss"] = "https://evil.example.com"
            case "bad_signature":  # same kid, another key: the published key does not verify it
                key = RSAKey.generate_key(2048, parameters={"kid": self.key.kid or "k1"})
            case "unknown_kid":
                key = RSAKey.generate_key(2048, parameters={"kid": "never-published"})
        return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=["RS256"])


@asynccontextmanager
async def serve_asgi(app: Any, port: int) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1:`port` inside the caller's event loop."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        await eventually(lambda: server.started, 30, 0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True

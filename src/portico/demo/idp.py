"""The demo's stand-in for a company identity provider: a small OpenID Connect provider on loopback, so `portico
demo` can show single sign-on ("Sign in with Demo IdP") without an Okta or Entra tenant.

It knows one person, Erin, in the IdP group `engineering`, who signed in with a password and a second factor
(`amr: ["pwd", "otp"]`). It speaks the authorization code flow as real IdPs do: discovery, JWKS, /authorize
(a page with one button, PKCE S256 required), /token (client secret, redirect URI, verifier and single-use
codes checked; an RS256 ID token), /userinfo. Nothing is persisted: keys and codes live in the process.

    python -m portico.demo.idp --port 0 --client-id portico-demo --redirect-uri http://127.0.0.1:8080/login/sso/demo-idp/callback
    (the client secret comes from $PORTICO_DEMO_IDP_SECRET; prints `LISTENING <issuer>` when ready)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import os
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CODE_TTL_S = 60.0
NAME, EMAIL = "Erin Example", "erin@example.com"
PERSON: dict[str, str | list[str]] = {
    "sub": "erin-0001",
    "preferred_username": EMAIL,
    "email": EMAIL,
    "name": NAME,
    "groups": ["engineering"],
}
AMR = ["pwd", "otp"]


@dataclass(frozen=True, slots=True)
class _Code:
    redirect_uri: str
    challenge: str
    nonce: str | None
    expires: float


class DemoIdp:
    def __init__(self, issuer: str, client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = redirect_uris
        self.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4), "use": "sig", "alg": "RS256"})
        self._codes: dict[str, _Code] = {}
        self._tokens: set[str] = set()
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize, methods=["GET", "POST"]),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo),
            ]
        )

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
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

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        q = dict(request.query_params) if request.method == "GET" else {
            k: v for k, v in (await request.form()).items() if isinstance(v, str)
        }  # fmt: skip
        if q.get("client_id") != self.client_id or q.get("redirect_uri") not in self.redirect_uris:
            return HTMLResponse("<p>Unknown client or redirect URI.</p>", status_code=400)  # never redirect there
        redirect = q["redirect_uri"]

        def back(**params: str) -> Response:
            if q.get("state") is not None:
                params["state"] = q["state"]
            return RedirectResponse(f"{redirect}?{urlencode(params)}", status_code=303)

        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 is required")
        if "openid" not in q.get("scope", "").split():
            return back(error="invalid_scope")
        if request.method == "GET":
            return self._page(q)
        if q.get("decision") != "continue":
            return back(error="access_denied")
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(redirect, q["code_challenge"], q.get("nonce"), time.time() + CODE_TTL_S)
        return back(code=code, iss=self.issuer)

    def _page(self, q: dict[str, str]) -> Response:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in q.items()
            if k != "decision"
        )
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Demo IdP</title></head>'
            '<body style="font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto">'
            "<h1>Demo IdP</h1><p>The company identity provider of <code>portico demo</code>. You are signed in here "
            f"as <strong>{html.escape(NAME)}</strong> ({html.escape(EMAIL)}), group "
            "<code>engineering</code>, with a password and a one-time code.</p>"
            f'<form method="post" action="/authorize">{hidden}'
            '<button type="submit" name="decision" value="continue">Continue as Erin</button> '
            '<button type="submit" name="decision" value="cancel">Cancel</button></form></body></html>'
        )
        return HTMLResponse(body, headers={"cache-control": "no-store", "x-frame-options": "DENY"})

    async def token(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            except ValueError:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
        if client_id != self.client_id or not secrets.compare_digest(secret or "", self.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self._codes.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or grant is None or grant.expires < time.time():
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if form.get("redirect_uri") != grant.redirect_uri or not secrets.compare_digest(challenge, grant.challenge):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        access = secrets.token_urlsafe(24)
        self._tokens.add(access)
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": self.client_id, "iat": now, "exp": now + 300, "amr": AMR, **PERSON,
        }  # fmt: skip
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        id_token = jwt.encode({"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}, claims, self.key, ["RS256"])
        body = {"access_token": access, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}
        return JSONResponse(body, headers={"cache-control": "no-store"})

    async def userinfo(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token not in self._tokens:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(PERSON)


class _Announcing(uvicorn.Server):
    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        port = self.servers[0].sockets[0].getsockname()[1]
        self.idp.issuer = f"http://127.0.0.1:{port}"
        print(f"LISTENING {self.idp.issuer}", flush=True)

    idp: DemoIdp


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "demo IdP")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client-id", default="portico-demo")
    parser.add_argument("--redirect-uri", action="append", required=True)
    args = parser.parse_args(argv)
    secret = os.environ.get("PORTICO_DEMO_IDP_SECRET")
    if not secret:
        sys.exit("PORTICO_DEMO_IDP_SECRET is not set")
    idp = DemoIdp("http://127.0.0.1", args.client_id, secret, args.redirect_uri)
    server = _Announcing(uvicorn.Config(idp.app, host="127.0.0.1", port=args.port, log_level="warning"))
    server.idp = idp
    server.run()


if __name__ == "__main__":
    main()

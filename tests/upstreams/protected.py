"""A protected upstream for per-user OAuth tests: a real MCP server (the SDK's `MCPServer`) behind bearer auth,
with its own small authorization server, both served by uvicorn on one loopback port inside the test's loop.

    async with ProtectedUpstream().serving() as up:      # up.mcp_url = http://127.0.0.1:PORT/mcp
        ...

* `/mcp`: 401 `WWW-Authenticate: Bearer resource_metadata="…/.well-known/oauth-protected-resource/mcp",
  scope="files:read"` without a valid access token; with one, tool `whoami` answers the token's user (the
  account at this upstream) and `token_id` (which of that user's tokens it was). `seen` records every
  Authorization header that reached `/mcp`.
* PRM at `/.well-known/oauth-protected-resource/mcp` (path-inserted), AS issuer `<base>/as` (path-aware RFC 8414
  discovery at `/.well-known/oauth-authorization-server/as`).
* AS: `/as/register` (RFC 7591), `/as/authorize` (a form asking which account to sign in as, PKCE S256
  required, `resource` recorded), `/as/token` (authorization_code with PKCE and client auth; refresh_token
  with rotation: a spent refresh token is refused).

Knobs: `access_ttl_s` (expires_in of access tokens), `s256` (advertise S256 or only `plain`), `prm_extra`
(override PRM fields: SSRF-shaped `authorization_servers`), `catalog_token` (a static token valid for listing).
`revoke_access()` / `revoke_refresh()` invalidate the issued tokens.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import anyio
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support.portico import free_port
from tests.support.waits import eventually
from tests.upstreams._serve import build_http_app


@dataclass
class _Token:
    user: str
    client_id: str
    token_id: str
    scope: str


@dataclass
class _Code:
    user: str
    client_id: str
    redirect_uri: str
    challenge: str
    resource: str | None
    scope: str


@dataclass
class ProtectedUpstream:
    access_ttl_s: int = 3600
    s256: bool = True
    prm_extra: dict[str, Any] = field(default_factory=dict)
    catalog_token: str | None = "catalog-service-token"
    port: int = 0
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    access: dict[str, _Token] = field(default_factory=dict)
    refresh: dict[str, _Token] = field(default_factory=dict)
    spent_refresh: set[str] = field(default_factory=set)
    codes: dict[str, _Code] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)  # Authorization headers at /mcp, in order
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)  # form fields, secrets removed

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def issuer(self) -> str:
        return f"{self.base}/as"

    def revoke_access(self) -> None:
        self.access.clear()

    def revoke_refresh(self) -> None:
        self.spent_refresh.update(self.refresh)
        self.refresh.clear()

    # ------------------------------------------------------------------------------------------ MCP

    def _mcp(self) -> MCPServer[Any]:
        mcp: MCPServer[Any] = MCPServer("protected", version="1.0.0")

        @mcp.tool(description="Which account's token this call carried", structured_output=False)
        def whoami(ctx: Context) -> str:
            request = ctx.request_context.request
            header = request.headers.get("authorization", "") if request is not None else ""
            token = self.access.get(header.removeprefix("Bearer "))
            if token is None:
                return "catalog" if header == f"Bearer {self.catalog_token}" else "nobody"
            return f"{token.user} {token.token_id}"

        return mcp

    def _guard(self, app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/mcp"):
                header = dict(scope["headers"]).get(b"authorization", b"").decode()
                self.seen.append(header)
                token = header.removeprefix("Bearer ")
                if token not in self.access and not (self.catalog_token and token == self.catalog_token):
                    challenge = (
                        f'Bearer resource_metadata="{self.base}/.well-known/oauth-protected-resource/mcp", '
                        'scope="files:read"'
                    )
                    response = JSONResponse({"error": "invalid_token"}, 401, {"www-authenticate": challenge})
                    await response(scope, receive, send)
                    return
            await app(scope, receive, send)

        return guarded

    # ------------------------------------------------------------------------------------------- AS

    async def _prm(self, request: Request) -> Response:
        body = {"resource": self.mcp_url, "authorization_servers": [self.issuer], "scopes_supported": ["files:read"]}
        return JSONResponse({**body, **self.prm_extra})

    async def _metadata(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "registration_endpoint": f"{self.issuer}/register",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"] if self.s256 else ["plain"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def _register(self, request: Request) -> Response:
        body = await request.json()
        client_id = f"dyn-{secrets.token_hex(4)}"
        method = body.get("token_endpoint_auth_method", "client_secret_basic")
        record = {**body, "client_id": client_id, "token_endpoint_auth_method": method}
        if method != "none":
            record["client_secret"] = secrets.token_urlsafe(16)
        self.clients[client_id] = record
        return JSONResponse(record, 201)

    async def _authorize(self, request: Request) -> Response:
        if request.method == "GET":
            params = dict(request.query_params)
        else:
            params = {k: str(v) for k, v in (await request.form()).items()}
        client = self.clients.get(params.get("client_id", ""))
        if client is None or params.get("redirect_uri") not in client["redirect_uris"]:
            return HTMLResponse("unknown client or redirect_uri", 400)
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return HTMLResponse("PKCE S256 required", 400)
        if request.method == "GET":
            self.authorize_requests.append(params)
            hidden = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in params.items())
            form = f'<form method="post" action="/as/authorize">{hidden}<input name="username"><button>Sign in</button>'
            return HTMLResponse(form + "</form>")
        code = secrets.token_urlsafe(16)
        self.codes[code] = _Code(
            params["username"], params["client_id"], params["redirect_uri"], params["code_challenge"],
            params.get("resource"), params.get("scope", ""),
        )  # fmt: skip
        query = urlencode({"code": code, "state": params.get("state", ""), "iss": self.issuer})
        return RedirectResponse(f"{params['redirect_uri']}?{query}", 302)

    def _client_auth(self, request: Request, form: dict[str, str]) -> dict[str, Any] | None:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        client = self.clients.get(client_id)
        if client is None or client.get("client_secret", "") != secret:
            return None
        return client

    async def _token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append({k: v for k, v in form.items() if k not in ("client_secret",)})
        client = self._client_auth(request, form)
        if client is None:
            return JSONResponse({"error": "invalid_client"}, 401)
        if form.get("resource") != self.mcp_url:
            return JSONResponse({"error": "invalid_target"}, 400)
        if form.get("grant_type") == "authorization_code":
            code = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if code is None or code.client_id != client["client_id"] or code.challenge != digest:
                return JSONResponse({"error": "invalid_grant"}, 400)
            return self._issue(code.user, client["client_id"], code.scope)
        if form.get("grant_type") == "refresh_token":
            old = self.refresh.pop(form.get("refresh_token", ""), None)
            if old is None or old.client_id != client["client_id"]:
                return JSONResponse({"error": "invalid_grant"}, 400)
            self.spent_refresh.add(form["refresh_token"])
            return self._issue(old.user, old.client_id, old.scope)
        return JSONResponse({"error": "unsupported_grant_type"}, 400)

    def _issue(self, user: str, client_id: str, scope: str) -> Response:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        token = _Token(user, client_id, f"t{len(self.access) + len(self.spent_refresh)}-{secrets.token_hex(2)}", scope)
        self.access[access] = token
        self.refresh[refresh] = token
        body = {"access_token": access, "token_type": "Bearer", "expires_in": self.access_ttl_s,
                "refresh_token": refresh, "scope": scope}  # fmt: skip
        return JSONResponse(body, headers={"cache-control": "no-store"})

    # -------------------------------------------------------------------------------------- serving

    def app(self) -> ASGIApp:
        routes = [
            Route("/.well-known/oauth-protected-resource/mcp", self._prm),
            Route("/.well-known/oauth-authorization-server/as", self._metadata),
            Route("/as/register", self._register, methods=["POST"]),
            Route("/as/authorize", self._authorize, methods=["GET", "POST"]),
            Route("/as/token", self._token, methods=["POST"]),
        ]
        app: Starlette = build_http_app(self._mcp(), "127.0.0.1", routes=routes)
        return self._guard(app)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[ProtectedUpstream]:
        self.port = self.port or free_port()
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                http="h11", access_log=False)  # fmt: skip
        server = uvicorn.Server(config)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            await eventually(lambda: server.started, 30, 0.02)
            try:
                yield self
            finally:
                server.should_exit = True

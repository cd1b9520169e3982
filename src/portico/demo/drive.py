"""The demo's "Drive": an MCP server that needs each person's own authorization, so `portico demo` can show
per-user upstream OAuth (the first call asks you to connect your Drive account; later calls carry your token).

One loopback port serves both halves, as a SaaS MCP server with its own authorization server would:

* `/mcp`: Streamable HTTP (the SDK's `MCPServer`) with `list_files()` and `read_file(name)` over the sample files of
  the Drive account the bearer token belongs to. Without a valid token: 401 `WWW-Authenticate: Bearer
  resource_metadata="…/.well-known/oauth-protected-resource/mcp", scope="drive.read"`. The catalog token
  ($PORTICO_DEMO_DRIVE_CATALOG_TOKEN) opens the endpoint for listing tools only; its tool calls are refused.
* The authorization server, issuer = the base URL: RFC 8414 metadata, `/register` (RFC 7591), `/authorize` (a
  page "Sign in to Demo Drive as: [account]", PKCE S256 required), `/token` (authorization_code with PKCE and
  client authentication; refresh_token with rotation: a spent refresh token is refused).

Nothing is persisted: clients, codes and tokens live in the process.

    python -m portico.demo.drive --port 0     (prints `LISTENING <mcp url>` when ready)
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
from urllib.parse import unquote, urlencode

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

SCOPE = "drive.read"
CODE_TTL_S = 60.0
ACCESS_TTL_S = 3600
# Each Drive account's files: what a connected person sees through Portico is their own account's.
FILES: dict[str, dict[str, str]] = {
    "dana": {
        "quarterly-plan.md": "# Dana's quarterly plan\n\n1. Ship the VPN fix (T-1).\n2. Hire a second SRE.\n",
        "team-offsite.txt": "Team offsite: Oslo, 12-13 June. Dana books the room.\n",
    },
    "admin": {
        "access-review.md": "# Access review (admin)\n\nRemove leavers from the admins group by Friday.\n",
        "budget.csv": "item,eur\nservers,12000\nlicences,4800\n",
    },
    "erin": {
        "design-doc.md": "# Erin's design doc\n\nA gateway in front of every MCP server.\n",
    },
}


@dataclass(frozen=True, slots=True)
class _Code:
    account: str
    client_id: str
    redirect_uri: str
    challenge: str
    expires: float


@dataclass(frozen=True, slots=True)
class _Grant:
    account: str
    client_id: str
    expires: float


class DemoDrive:
    def __init__(self, base: str, catalog_token: str) -> None:
        self.base = base
        self.catalog_token = catalog_token
        self._clients: dict[str, dict[str, Any]] = {}
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self.app = self._build()

    @property
    def mcp_url(self) -> str:
        return f"{self.base}/mcp"

    # ------------------------------------------------------------------------------------------ MCP

    def _account(self, ctx: Context) -> str:
        request = ctx.request_context.request
        header = request.headers.get("authorization", "") if request is not None else ""
        grant = self._access.get(header.removeprefix("Bearer "))
        if grant is None:  # the catalog token: listing tools only
            raise ValueError("Connect your Drive account first: the catalog token lists tools only")
        return grant.account

    def _mcp(self) -> MCPServer[Any]:
        mcp: MCPServer[Any] = MCPServer(
            "drive", version="1.0.0", instructions="Your files in Demo Drive.", log_level="WARNING"
        )

        @mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
        def list_files(ctx: Context) -> list[dict[str, Any]]:
            """The files in your Drive account."""
            account = self._account(ctx)
            return [{"owner": account, "name": n, "bytes": len(t)} for n, t in sorted(FILES[account].items())]

        @mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
        def read_file(name: str, ctx: Context) -> str:
            """One file of your Drive account, by name (see list_files)."""
            files = FILES[self._account(ctx)]
            if name not in files:
                raise ValueError("no such file in your Drive")
            return files[name]

        return mcp

    def _guard(self, app: ASGIApp) -> ASGIApp:
        """Bearer auth in front of `/mcp`: a user's access token or the catalog token, else the 401 challenge."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/mcp"):
                header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
                token = header.removeprefix("Bearer ")
                grant = self._access.get(token)
                user_ok = grant is not None and grant.expires > time.time()
                if not user_ok and not (self.catalog_token and secrets.compare_digest(token, self.catalog_token)):
                    challenge = (
                        f'Bearer resource_metadata="{self.base}/.well-known/oauth-protected-resource/mcp", '
                        f'scope="{SCOPE}"'
                    )
                    response = JSONResponse({"error": "invalid_token"}, 401, {"www-authenticate": challenge})
                    await response(scope, receive, send)
                    return
            await app(scope, receive, send)

        return guarded

    # ------------------------------------------------------------------------------------------- AS

    async def prm(self, request: Request) -> Response:
        return JSONResponse({"resource": self.mcp_url, "authorization_servers": [self.base],
                             "scopes_supported": [SCOPE], "resource_name": "Demo Drive"})  # fmt: skip

    async def metadata(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.base,
                "authorization_endpoint": f"{self.base}/authorize",
                "token_endpoint": f"{self.base}/token",
                "registration_endpoint": f"{self.base}/register",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                "scopes_supported": [SCOPE],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def register(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        uris = body.get("redirect_uris") if isinstance(body, dict) else None
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
            return JSONResponse({"error": "invalid_redirect_uri"}, 400)
        method = body.get("token_endpoint_auth_method") or "client_secret_basic"
        if method not in ("client_secret_basic", "client_secret_post", "none"):
            return JSONResponse({"error": "invalid_client_metadata"}, 400)
        record: dict[str, Any] = {"client_id": f"drive-{secrets.token_hex(6)}", "redirect_uris": uris,
                                  "token_endpoint_auth_method": method,
                                  "grant_types": ["authorization_code", "refresh_token"]}  # fmt: skip
        if method != "none":
            record["client_secret"] = secrets.token_urlsafe(24)
        self._clients[record["client_id"]] = record
        return JSONResponse(record, 201, headers={"cache-control": "no-store"})

    async def authorize(self, request: Request) -> Response:
        q = dict(request.query_params) if request.method == "GET" else {
            k: v for k, v in (await request.form()).items() if isinstance(v, str)
        }  # fmt: skip
        client = self._clients.get(q.get("client_id", ""))
        if client is None or q.get("redirect_uri") not in client["redirect_uris"]:
            return HTMLResponse("<p>Unknown client or redirect URI.</p>", status_code=400)  # never redirect there
        redirect = q["redirect_uri"]

        def back(**params: str) -> Response:
            params["iss"] = self.base
            if q.get("state") is not None:
                params["state"] = q["state"]
            return RedirectResponse(f"{redirect}?{urlencode(params)}", status_code=303)

        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 is required")
        if request.method == "GET":
            return self._page(q)
        if q.get("decision") != "sign-in" or q.get("account") not in FILES:
            return back(error="access_denied")
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(q["account"], q["client_id"], redirect, q["code_challenge"], time.time() + CODE_TTL_S)
        return back(code=code)

    def _page(self, q: dict[str, str]) -> Response:
        e = html.escape
        hidden = "".join(
            f'<input type="hidden" name="{e(k)}" value="{e(v)}">'
            for k, v in q.items()
            if k not in ("decision", "account")
        )
        options = "".join(f'<option value="{e(a)}">{e(a)}</option>' for a in FILES)
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Demo Drive</title></head>'
            '<body style="font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto">'
            "<h1>Demo Drive</h1><p>Portico asks to read your files (<code>drive.read</code>) on your behalf.</p>"
            f'<form method="post" action="/authorize">{hidden}'
            f'<label>Sign in to Demo Drive as: <select name="account">{options}</select></label> '
            '<button type="submit" name="decision" value="sign-in">Sign in and allow</button> '
            '<button type="submit" name="decision" value="cancel">Cancel</button></form></body></html>'
        )
        return HTMLResponse(body, headers={"cache-control": "no-store", "x-frame-options": "DENY"})

    def _client(self, request: Request, form: dict[str, str]) -> dict[str, Any] | None:
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                pair = base64.b64decode(basic[6:]).decode()
            except ValueError:
                return None
            raw_id, _, raw_secret = pair.partition(":")
            client_id, secret = unquote(raw_id), unquote(raw_secret)  # RFC 6749 §2.3.1: form-encoded
        client = self._clients.get(client_id)
        if client is None:
            return None
        expected = client.get("client_secret")
        if expected is None:  # a public client: PKCE is its proof
            return client if secret is None else None
        return client if secrets.compare_digest(secret or "", expected) else None

    async def token(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        client = self._client(request, form)
        if client is None:
            return JSONResponse({"error": "invalid_client"}, 401)
        if form.get("resource", self.mcp_url) != self.mcp_url:
            return JSONResponse({"error": "invalid_target"}, 400)
        if form.get("grant_type") == "authorization_code":
            code = self._codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if (
                code is None
                or code.expires < time.time()
                or code.client_id != client["client_id"]
                or code.redirect_uri != form.get("redirect_uri")
                or not secrets.compare_digest(digest, code.challenge)
            ):
                return JSONResponse({"error": "invalid_grant"}, 400)
            return self._issue(code.account, code.client_id)
        if form.get("grant_type") == "refresh_token":
            old = self._refresh.pop(form.get("refresh_token", ""), None)  # rotation: each refresh token works once
            if old is None or old.client_id != client["client_id"]:
                return JSONResponse({"error": "invalid_grant"}, 400)
            return self._issue(old.account, old.client_id)
        return JSONResponse({"error": "unsupported_grant_type"}, 400)

    def _issue(self, account: str, client_id: str) -> Response:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self._access[access] = _Grant(account, client_id, time.time() + ACCESS_TTL_S)
        self._refresh[refresh] = _Grant(account, client_id, 0.0)
        body = {"access_token": access, "token_type": "Bearer", "expires_in": ACCESS_TTL_S,
                "refresh_token": refresh, "scope": SCOPE}  # fmt: skip
        return JSONResponse(body, headers={"cache-control": "no-store"})

    # -------------------------------------------------------------------------------------- serving

    def _build(self) -> ASGIApp:
        routes = [
            Route("/.well-known/oauth-protected-resource/mcp", self.prm),
            Route("/.well-known/oauth-authorization-server", self.metadata),
            Route("/register", self.register, methods=["POST"]),
            Route("/authorize", self.authorize, methods=["GET", "POST"]),
            Route("/token", self.token, methods=["POST"]),
        ]
        hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=[f"http://{h}" for h in hosts]
        )
        lowlevel = self._mcp()._lowlevel_server  # the public MCPServer API builds apps with its own settings only
        app: Starlette = lowlevel.streamable_http_app(
            streamable_http_path="/mcp", host="127.0.0.1", transport_security=security, custom_starlette_routes=routes
        )
        return self._guard(app)


class _Announcing(uvicorn.Server):
    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        port = self.servers[0].sockets[0].getsockname()[1]
        self.drive.base = f"http://127.0.0.1:{port}"
        print(f"LISTENING {self.drive.mcp_url}", flush=True)

    drive: DemoDrive


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "demo Drive")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    catalog_token = os.environ.get("PORTICO_DEMO_DRIVE_CATALOG_TOKEN")
    if not catalog_token:
        sys.exit("PORTICO_DEMO_DRIVE_CATALOG_TOKEN is not set")
    drive = DemoDrive("http://127.0.0.1", catalog_token)
    server = _Announcing(uvicorn.Config(drive.app, host="127.0.0.1", port=args.port, log_level="warning"))
    server.drive = drive
    server.run()


if __name__ == "__main__":
    main()

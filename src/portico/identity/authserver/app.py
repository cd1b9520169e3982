"""`AuthServer`: Portico's embedded OAuth 2.1 authorization server, as one ASGI application.

Sits beside the MCP endpoint: Portico's router asks `handles(path)` and hands matching requests here. Below it:
`browser` (authorize, sign-in, consent), `account` (self-service TOTP), `issuance` (token, revoke), `clients` and
`cimd` (who the clients are), `grants` (state in the store), `pages` (HTML). Imports `portico.identity` (tokens,
keys, users, login), `portico.store`, `portico.audit`; never the pipeline or `portico.config`.

    GET  /.well-known/oauth-authorization-server[/<issuer path>]   RFC 8414 metadata
    GET  /oauth/jwks.json                                          the signing keys
    GET  /oauth/authorize   POST /oauth/token   POST /oauth/revoke   POST /oauth/register
    GET|POST /login   POST /login/otp   GET|POST /consent   GET|POST /logout
    GET /account/security   POST /account/security/totp/{enrol,confirm,remove}      self-service TOTP (`account`)

Every path is under the issuer's path (none by default). Revocations are kept in memory for the resource
server's synchronous `is_revoked(jti)`; `run()` (started in Portico's task group) reloads them from the
database every `revocation_poll_s` so replicas converge, and purges expired rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from portico.audit.log import AuditLog
from portico.identity.authserver.account import SECURITY_PATH, AccountPages
from portico.identity.authserver.browser import BrowserFlow
from portico.identity.authserver.cimd import HttpClientFactory, MetadataFetcher
from portico.identity.authserver.clients import ClientRegistry, parse_registration
from portico.identity.authserver.context import SESSION_COOKIE, ServerContext
from portico.identity.authserver.grants import GrantStore
from portico.identity.authserver.issuance import TokenEndpoint
from portico.identity.authserver.model import AUTH_METHODS, ExternalLoginLink, OAuthError
from portico.identity.authserver.settings import AuthServerSettings
from portico.identity.authserver.web import SlidingWindow, html_error, json_response, oauth_error_response, read_json
from portico.identity.keys import KeyRing
from portico.identity.login import LoginIdentity
from portico.identity.settings import TokenSettings
from portico.identity.tokens import TokenIssuer
from portico.identity.users import UserDirectory
from portico.store.db import Store

log = logging.getLogger("portico.identity.authserver")

Handler = Callable[[Request], Awaitable[Response]]
METADATA_PATH = "/.well-known/oauth-authorization-server"


class AuthServer:
    """The authorization server. Create once per process; serve it for the paths `handles` accepts."""

    def __init__(
        self,
        settings: AuthServerSettings,
        tokens: TokenSettings,
        issuer: TokenIssuer,
        keyring: KeyRing,
        store: Store,
        users: UserDirectory,
        resources: Callable[[], Collection[str]],
        audit: AuditLog | None = None,
        external_logins: Sequence[ExternalLoginLink] = (),
        *,
        clock: Callable[[], float] = time.time,
        http_client: HttpClientFactory | None = None,
    ) -> None:
        fetcher = MetadataFetcher(settings, http_client=http_client, clock=clock)
        self.ctx = ServerContext(
            settings=settings,
            tokens=tokens,
            issuer=issuer,
            keyring=keyring,
            grants=GrantStore(store),
            clients=ClientRegistry(settings, store, fetcher),
            users=users,
            resources=resources,
            audit=audit,
            external_logins=tuple(external_logins),
            clock=clock,
        )
        self._flow = BrowserFlow(self.ctx)
        self._account = AccountPages(self.ctx)
        self._tokens = TokenEndpoint(self.ctx, self._flow)
        self._registrations = SlidingWindow(settings.registrations_per_minute, 60.0)
        p = self.ctx.path
        routes: dict[tuple[str, str], Handler] = {
            ("GET", METADATA_PATH + self.ctx.base_path): self._metadata,
            ("GET", p(METADATA_PATH)): self._metadata,
            ("GET", p("/oauth/jwks.json")): self._jwks,
            ("GET", p("/oauth/authorize")): self._flow.authorize,
            ("POST", p("/oauth/token")): self._tokens.token,
            ("POST", p("/oauth/revoke")): self._tokens.revoke,
            ("GET", p("/login")): self._flow.login_page,
            ("POST", p("/login")): self._flow.login_submit,
            ("GET", p("/login/otp")): self._flow.login_page,
            ("POST", p("/login/otp")): self._flow.otp_submit,
            ("GET", p("/consent")): self._flow.consent_page,
            ("POST", p("/consent")): self._flow.consent_submit,
            ("GET", p("/logout")): self._flow.logout,
            ("POST", p("/logout")): self._flow.logout,
            ("GET", p(SECURITY_PATH)): self._account.security_page,
            ("POST", p(SECURITY_PATH + "/totp/enrol")): self._account.enrol,
            ("POST", p(SECURITY_PATH + "/totp/confirm")): self._account.confirm,
            ("POST", p(SECURITY_PATH + "/totp/remove")): self._account.remove,
        }
        if settings.dynamic_registration:
            routes[("POST", p("/oauth/register"))] = self._register
        self._routes = routes
        self._paths = frozenset(path for _, path in routes)

    # ------------------------------------------------------------------------------------ public API

    def handles(self, path: str) -> bool:
        """Whether `path` is one of the authorization server's endpoints."""
        return path in self._paths

    def is_revoked(self, jti: str) -> bool:
        """Whether an access token id was revoked (the `TokenVerifier` hook). In memory; never blocks."""
        return jti in self.ctx.revoked

    def metadata(self) -> dict[str, Any]:
        """The RFC 8414 authorization server metadata."""
        ctx, settings = self.ctx, self.ctx.settings
        doc: dict[str, Any] = {
            "issuer": ctx.issuer_url,
            "authorization_endpoint": ctx.url("/oauth/authorize"),
            "token_endpoint": ctx.url("/oauth/token"),
            "revocation_endpoint": ctx.url("/oauth/revoke"),
            "jwks_uri": ctx.url("/oauth/jwks.json"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "scopes_supported": list(settings.scopes),
            "authorization_response_iss_parameter_supported": True,
        }
        if settings.dynamic_registration:
            doc["registration_endpoint"] = ctx.url("/oauth/register")
        if settings.client_id_metadata_documents:
            doc["client_id_metadata_document_supported"] = True
        return doc

    async def signed_in_subject(self, request: Request) -> str | None:
        """Who this browser is signed in to Portico as (a live sign-in session), or None."""
        session_id = request.cookies.get(SESSION_COOKIE, "")
        if not session_id:
            return None
        identity = await self.ctx.grants.session(session_id, self.ctx.now(), self.ctx.settings.session_idle_ttl_s)
        return identity.subject if identity is not None else None

    async def complete_external_login(self, request: Request, request_id: str, identity: LoginIdentity) -> Response:
        """Continue a pending authorization with a person signed in at an external IdP.

        Called by the SSO module's callback handler with the browser's request (its cookies bind it to the
        pending authorization), the `request` id the login page put on the SSO start link, and who signed in.
        Returns the response to send the browser: on to consent (or straight back to the client when consent is
        remembered), with a login session started; or an HTML error page when the request expired or was started
        in another browser.
        """
        return await self._flow.complete_external_login(request, request_id, identity)

    async def sync(self) -> None:
        """Reload revocations from the database into memory (merging: a revocation is never undone)."""
        now = self.ctx.now()
        for jti, exp in await self.ctx.grants.revoked_since(None, now):
            self.ctx.remember_revoked(jti, exp)
        cutoff = now.timestamp()
        for jti in [j for j, exp in self.ctx.revoked.items() if exp <= cutoff]:
            self.ctx.revoked.pop(jti, None)

    async def purge(self) -> None:
        """Delete expired requests, codes, sessions, tokens and revocations."""
        await self.ctx.grants.purge(self.ctx.now(), code_keep_s=max(self.ctx.tokens.access_ttl_s, 600))

    async def run(self) -> None:
        """Background housekeeping until cancelled: `sync` every `revocation_poll_s`, `purge` about once a minute.

        Database errors are logged and retried at the next tick (the in-memory set keeps what it has).
        """
        last_purge = 0.0
        while True:
            try:
                await self.sync()
                if time.monotonic() - last_purge >= 60:
                    await self.purge()
                    last_purge = time.monotonic()
            except OAuthError as exc:
                log.warning("authorization server housekeeping failed: %s", exc.detail)
            await anyio.sleep(self.ctx.settings.revocation_poll_s)

    # ------------------------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        method = "GET" if request.method == "HEAD" else request.method
        handler = self._routes.get((method, scope["path"]))
        if handler is None:
            allowed = scope["path"] in self._paths
            response: Response = json_response(
                {"error": "invalid_request", "error_description": "Method not allowed" if allowed else "Not found"},
                405 if allowed else 404,
            )
        else:
            try:
                response = await handler(request)
            except OAuthError as exc:
                log.warning("authorization server: %s (%s)", exc.public, exc.detail)
                if scope["path"].startswith(self.ctx.path("/oauth/")):
                    response = oauth_error_response(exc)
                else:
                    response = html_error("Something went wrong. Please try again.", exc.status)
        await response(scope, receive, send)

    # ------------------------------------------------------------------------------------ small endpoints

    async def _metadata(self, request: Request) -> Response:
        return json_response(self.metadata(), headers={"cache-control": "public, max-age=300"})

    async def _jwks(self, request: Request) -> Response:
        return json_response(self.ctx.keyring.jwks(), headers={"cache-control": "public, max-age=300"})

    async def _register(self, request: Request) -> Response:
        ctx = self.ctx
        ip = request.client.host if request.client is not None else "unknown"
        try:
            if not self._registration_allowed(ip):
                raise OAuthError("invalid_request", "Too many registrations; try again later", status=429)
            content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if content_type != "application/json":
                raise OAuthError("invalid_client_metadata", "Expected an application/json body")
            body = await read_json(request, ctx.settings.max_registration_bytes)
            client, echoed = parse_registration(body, ctx.settings)
            response = await ctx.clients.register(client, echoed, ctx.now())
        except OAuthError as exc:
            ctx.audit_event("oauth.register", "denied", ip=ip, reason=exc.error)
            return oauth_error_response(exc)
        ctx.audit_event(
            "oauth.register",
            "ok",
            client_id=response["client_id"],
            ip=ip,
            extra={"client_name": echoed.get("client_name"), "auth": client.auth_method},
        )
        return json_response(response, 201)

    def _registration_allowed(self, ip: str) -> bool:
        if self._registrations.full(ip):
            return False
        self._registrations.record(ip)
        return True

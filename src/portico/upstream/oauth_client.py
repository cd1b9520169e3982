"""`OAuthClient`: Portico as the OAuth client of the upstreams that need each user's own authorization.

One per process, shared by the per-user upstream connectors (`user_pool.OAuthUpstream`) and the browser
routes (`portico.connect`). It holds nothing of a user's in memory beyond a refresh lock: tokens live in the
vault, one JSON secret per user and server,

    scope `user:<subject>:server:<server id>`, name `oauth_tokens`:
        {access_token, refresh_token, expires_at, scope, issuer, client_id, resource, token_endpoint}

and a dynamic registration (RFC 7591) per server, `server:<server id>` / `oauth_client`, kept for the issuer
it was made with and never used with another (a changed issuer or redirect URI registers again).

Refreshing is serialized per (subject, server): the second of two concurrent refreshes finds the token the first
stored and uses it, so a rotated refresh token is never spent twice. A refused grant (400/401 from the token
endpoint) deletes the user's tokens: the next call asks them to connect again. Across replicas the lock is
per process (see the report's limits).

Audit (when given an `AuditLog`): `upstream.token_refresh` (outcome denied) whenever a refresh ends with the
tokens deleted, `upstream.disconnect` for each disconnect; the connect pages record `upstream.connect` through
`record`. Records carry the subject, `server_id` and a reason code, never a token.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import anyio
import httpx2
import orjson

from portico.config import ServerSettings, resolve_secret
from portico.types import JSON
from portico.upstream.connect_ticket import ConnectKeys, PendingConnect, TicketLedger
from portico.upstream.oauth_discovery import UpstreamAuth, UpstreamAuthError, UrlGuard, discover
from portico.upstream.oauth_settings import UpstreamOAuthSettings
from portico.vault import SecretNotFoundError, Vault, VaultError, parse_vault_ref, server_scope, user_server_scope

if TYPE_CHECKING:  # a type only: the upstream layer does not depend on the audit package at run time
    from portico.audit.log import AuditLog

log = logging.getLogger("portico.upstream.oauth")

TOKENS_NAME = "oauth_tokens"
CLIENT_NAME = "oauth_client"
CONNECT_PREFIX = "/connect/"
DISCOVERY_TTL_S = 3600.0
FLOW_TTL_S = 600.0
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class TokenSet:
    """One user's tokens toward one upstream, as stored in the vault."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: float | None
    scope: str | None
    issuer: str
    client_id: str
    resource: str
    token_endpoint: str

    def to_json(self) -> str:
        return orjson.dumps({k: getattr(self, k) for k in self.__slots__}).decode()

    @classmethod
    def from_json(cls, text: str) -> TokenSet:
        """Raises: ValueError: not a token set."""
        try:
            data = orjson.loads(text)
            return cls(**{k: data.get(k) for k in cls.__slots__})
        except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
            raise ValueError("not a token set") from exc


@dataclass(frozen=True, slots=True)
class ClientRegistration:
    """Portico's client at one upstream authorization server."""

    issuer: str
    client_id: str
    client_secret: str | None = field(repr=False)
    auth_method: str  # client_secret_basic | client_secret_post | none
    redirect_uri: str


class _KeyedLocks:
    """One lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], list[Any]] = {}

    @asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        entry = self._locks.setdefault(key, [anyio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[key]


class OAuthClient:
    """Discovery, registration, the code exchange, and each user's tokens (see the module docstring)."""

    def __init__(
        self,
        vault: Vault,
        public_url: str,
        *,
        clock: Clock = time.time,
        http: httpx2.AsyncClient | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.vault = vault
        self.audit = audit
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self.secure = self.public_url.startswith("https://")
        self.ledger = TicketLedger(vault.store)
        self._http = http or httpx2.AsyncClient(follow_redirects=False, timeout=10.0)
        self._keys: ConnectKeys | None = None
        self._auth: dict[str, tuple[float, UpstreamAuth]] = {}
        self._locks = _KeyedLocks()
        self._closers: dict[str, Callable[[str], None]] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def keys(self) -> ConnectKeys:
        """Ticket, state and CSRF keys, derived from the current vault key (created if missing).

        Raises:
            VaultKeyError: the vault key is unusable.
        """
        if self._keys is None:
            self._keys = ConnectKeys(self.vault.keyring().current.material)
        return self._keys

    def on_disconnected(self, server_id: str, close: Callable[[str], None]) -> None:
        """Call `close(subject)` when a user's tokens for `server_id` are deleted (their connection must go)."""
        self._closers[server_id] = close

    def record(
        self,
        method: str,
        outcome: str,
        subject: str,
        server_id: str,
        reason: str,
        *,
        authenticated_by: str = "none",
        ip: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """One audit record of a connect, disconnect or refresh outcome (a no-op without an audit log).

        Raises:
            AuditError: the audit spool cannot be written (fail closed: the caller's answer is an error).
        """
        if self.audit is None:
            return
        self.audit.event(
            method,
            outcome,
            subject=subject,
            authenticated_by=authenticated_by,
            ip=ip,
            server_id=server_id,
            reason=reason,
            extra=extra,
        )

    # ----------------------------------------------------------------------------------- connect links

    def redirect_uri(self, server_id: str) -> str:
        return f"{self.public_url}{CONNECT_PREFIX}{server_id}/callback"

    def connect_link(self, subject: str, server: ServerSettings, scopes: tuple[str, ...] = ()) -> str:
        """A signed, expiring, single-use link that lets `subject` connect `server` in a browser."""
        oauth = _oauth(server)
        ticket = self.keys.mint(subject, server.id, self.clock(), oauth.ticket_ttl_s, scopes)
        return f"{self.public_url}{CONNECT_PREFIX}{server.id}?ticket={quote(ticket, safe='')}"

    # -------------------------------------------------------------------------------------- discovery

    async def auth_for(self, server: ServerSettings, *, fresh: bool = False) -> UpstreamAuth:
        """The upstream's checked authorization metadata (cached an hour).

        Raises:
            UpstreamAuthError: discovery failed or a rule was broken.
        """
        cached = self._auth.get(server.id)
        if cached is not None and not fresh and cached[0] > self.clock():
            return cached[1]
        assert server.url is not None
        oauth = _oauth(server)
        with anyio.fail_after(oauth.http_timeout_s * 8):
            auth = await discover(self._http, server.url, oauth)
        self._auth[server.id] = (self.clock() + DISCOVERY_TTL_S, auth)
        return auth

    async def client_for(self, server: ServerSettings, auth: UpstreamAuth) -> ClientRegistration:
        """The configured client, else this server's stored dynamic registration for this issuer, else a new one.

        Raises:
            UpstreamAuthError: no client id and the AS offers no registration, or registration failed.
            VaultError: the vault failed.
        """
        oauth = _oauth(server)
        redirect = self.redirect_uri(server.id)
        if oauth.client_id is not None:
            secret = await self._secret(server, oauth.client_secret)
            method = _pick_auth_method(auth.token_auth_methods, secret is not None)
            return ClientRegistration(auth.issuer, oauth.client_id, secret, method, redirect)
        async with self._locks.hold(("", server.id)):
            stored = await self._stored_client(server.id)
            if stored is not None and stored.issuer == auth.issuer and stored.redirect_uri == redirect:
                return stored
            registration = await self._register(server, auth, redirect)
            await self.vault.put(server_scope(server.id), CLIENT_NAME, orjson.dumps(_asdict(registration)).decode())
            return registration

    async def _register(self, server: ServerSettings, auth: UpstreamAuth, redirect: str) -> ClientRegistration:
        if auth.registration_endpoint is None:
            raise UpstreamAuthError(detail="no client_id configured and the upstream's AS offers no registration")
        method = _pick_auth_method(auth.token_auth_methods, True)
        metadata: JSON = {
            "client_name": "Portico MCP gateway",
            "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
            "application_type": "web",
        }
        if auth.scopes:
            metadata["scope"] = " ".join(auth.scopes)
        await UrlGuard.for_server(server.url or "", _oauth(server)).check(auth.registration_endpoint)
        try:
            response = await self._http.post(auth.registration_endpoint, json=metadata)
        except httpx2.HTTPError as exc:
            raise UpstreamAuthError(detail=f"client registration failed: {type(exc).__name__}") from exc
        body = _json_body(response)
        if response.status_code not in (200, 201) or not isinstance(body.get("client_id"), str):
            raise UpstreamAuthError(detail=f"client registration refused: HTTP {response.status_code}")
        secret = body.get("client_secret") if isinstance(body.get("client_secret"), str) else None
        method = str(body.get("token_endpoint_auth_method") or (method if secret else "none"))
        log.info("upstream %s: registered client %s at %s", server.id, body["client_id"], auth.issuer)
        return ClientRegistration(auth.issuer, body["client_id"], secret, method, redirect)

    async def _stored_client(self, server_id: str) -> ClientRegistration | None:
        try:
            data = orjson.loads(await self.vault.get(server_scope(server_id), CLIENT_NAME))
            return ClientRegistration(**data)
        except SecretNotFoundError:
            return None
        except (orjson.JSONDecodeError, TypeError) as exc:
            log.warning("upstream %s: stored client registration unreadable (%s); registering again", server_id, exc)
            return None

    async def _secret(self, server: ServerSettings, reference: str | None) -> str | None:
        if reference is None:
            return None
        name = parse_vault_ref(reference)
        return await self.vault.get(server_scope(server.id), name) if name else resolve_secret(reference)

    # --------------------------------------------------------------------------------- authorization

    def authorize_url(
        self, auth: UpstreamAuth, client: ClientRegistration, state: str, verifier: str, scopes: tuple[str, ...]
    ) -> str:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query: dict[str, str] = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": auth.resource,
        }
        if scopes:
            query["scope"] = " ".join(scopes)
        separator = "&" if "?" in auth.authorization_endpoint else "?"
        return auth.authorization_endpoint + separator + urlencode(query)

    def new_flow(
        self, server_id: str, subject: str, client: ClientRegistration, scopes: tuple[str, ...]
    ) -> PendingConnect:
        return PendingConnect(
            server_id=server_id,
            state=secrets.token_urlsafe(32),
            subject=subject,
            code_verifier=secrets.token_urlsafe(48),
            issuer=client.issuer,
            client_id=client.client_id,
            scopes=scopes,
            expires_at=self.clock() + FLOW_TTL_S,
        )

    async def complete(self, server: ServerSettings, pending: PendingConnect, code: str) -> TokenSet:
        """Exchange the code (with the PKCE verifier and `resource`) and store the user's tokens.

        Raises:
            UpstreamAuthError: the issuer or client changed meanwhile, or the token endpoint refused.
            VaultError: the tokens could not be stored.
        """
        auth = await self.auth_for(server)
        client = await self.client_for(server, auth)
        if (auth.issuer, client.client_id) != (pending.issuer, pending.client_id):
            raise UpstreamAuthError(detail="the upstream's authorization server changed during the flow")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "code_verifier": pending.code_verifier,
            "resource": auth.resource,
        }
        status, body = await self._token_request(server, auth.token_endpoint, client, form)
        if status != 200:
            raise UpstreamAuthError(detail=f"code exchange refused: HTTP {status} {str(body.get('error'))[:40]}")
        tokens = self._token_set(body, None, auth.issuer, client.client_id, auth.resource, auth.token_endpoint)
        async with self._locks.hold((pending.subject, server.id)):
            await self.vault.put(user_server_scope(pending.subject, server.id), TOKENS_NAME, tokens.to_json())
        return tokens

    # ---------------------------------------------------------------------------------- user tokens

    async def tokens(self, subject: str, server_id: str) -> TokenSet | None:
        """The user's stored tokens, or None.

        Raises:
            VaultError: the vault failed (not "nothing stored").
        """
        try:
            return TokenSet.from_json(await self.vault.get(user_server_scope(subject, server_id), TOKENS_NAME))
        except SecretNotFoundError:
            return None
        except ValueError:
            log.warning("upstream %s: stored tokens unreadable; the user must connect again", server_id)
            return None

    async def access_token(self, server: ServerSettings, subject: str) -> str | None:
        """A current access token of `subject` for `server` (refreshed when it is about to expire), or None:
        the user must connect.

        Raises:
            UpstreamAuthError: the token endpoint is unreachable or failing (the tokens are kept).
            VaultError: the vault failed.
        """
        tokens = await self.tokens(subject, server.id)
        if tokens is None:
            return None
        if not self._expiring(server, tokens):
            return tokens.access_token
        return await self.refresh(server, subject, tokens.access_token)

    async def refresh(self, server: ServerSettings, subject: str, stale: str) -> str | None:
        """Replace the access token `stale` (expired, or refused by the upstream). Serialized per (subject,
        server): a caller that waited finds its predecessor's token and uses it. None: connect again.

        Raises:
            UpstreamAuthError: the token endpoint is unreachable or failing (the tokens are kept).
            VaultError: the vault failed.
        """
        async with self._locks.hold((subject, server.id)):
            tokens = await self.tokens(subject, server.id)
            if tokens is None:
                return None
            if tokens.access_token != stale and not self._expiring(server, tokens):
                return tokens.access_token
            if tokens.refresh_token is None:
                await self._forget_refused(subject, server.id, "no_refresh_token")
                return None
            client = await self._client_for_tokens(server, tokens)
            if client is None:
                await self._forget_refused(subject, server.id, "client_changed")
                return None
            form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token, "resource": tokens.resource}
            status, body = await self._token_request(server, tokens.token_endpoint, client, form)
            if status in (400, 401):
                error = _error_code(body)
                log.info("upstream %s: refresh refused for a user (%s)", server.id, error)
                await self._forget_refused(subject, server.id, "refresh_refused", {"status": status, "as_error": error})
                return None
            if status != 200:
                raise UpstreamAuthError(detail=f"token refresh failed: HTTP {status}")
            fresh = self._token_set(
                body, tokens, tokens.issuer, tokens.client_id, tokens.resource, tokens.token_endpoint
            )
            await self.vault.put(user_server_scope(subject, server.id), TOKENS_NAME, fresh.to_json())
            return fresh.access_token

    async def disconnect(
        self, subject: str, server_id: str, *, by: str = "user", authenticated_by: str = "none", ip: str | None = None
    ) -> bool:
        """Forget the user's tokens for this server, close their upstream connection, and audit it
        (`upstream.disconnect`, reason `by`: "user" from the disconnect page, "operator" from the CLI;
        `not_connected` when there was nothing to forget). Returns whether there were any.

        Raises:
            VaultError: the vault failed.
            AuditError: the audit spool cannot be written (the tokens are already gone).
        """
        async with self._locks.hold((subject, server_id)):
            had = await self._forget(subject, server_id)
        reason = by if had else "not_connected"
        self.record("upstream.disconnect", "ok", subject, server_id, reason, authenticated_by=authenticated_by, ip=ip)
        return had

    async def _forget(self, subject: str, server_id: str) -> bool:
        """Delete the tokens (the caller holds the (subject, server) lock) and close the user's connection."""
        try:
            await self.vault.delete(user_server_scope(subject, server_id), TOKENS_NAME)
            had = True
        except SecretNotFoundError:
            had = False
        close = self._closers.get(server_id)
        if close is not None:
            close(subject)
        return had

    async def _forget_refused(
        self, subject: str, server_id: str, reason: str, extra: dict[str, Any] | None = None
    ) -> None:
        await self._forget(subject, server_id)
        self.record("upstream.token_refresh", "denied", subject, server_id, reason, extra=extra)

    # ------------------------------------------------------------------------------------- private

    def _expiring(self, server: ServerSettings, tokens: TokenSet) -> bool:
        return tokens.expires_at is not None and tokens.expires_at - _oauth(server).refresh_skew_s <= self.clock()

    async def _client_for_tokens(self, server: ServerSettings, tokens: TokenSet) -> ClientRegistration | None:
        """The client that obtained `tokens`: refresh only ever goes back to the same issuer with the same client."""
        oauth = _oauth(server)
        redirect = self.redirect_uri(server.id)
        if oauth.client_id is not None:
            if oauth.client_id != tokens.client_id:
                return None
            secret = await self._secret(server, oauth.client_secret)
            cached = self._auth.get(server.id)
            method = _pick_auth_method(cached[1].token_auth_methods if cached else (), secret is not None)
            return ClientRegistration(tokens.issuer, tokens.client_id, secret, method, redirect)
        stored = await self._stored_client(server.id)
        if stored is None or (stored.issuer, stored.client_id) != (tokens.issuer, tokens.client_id):
            return None
        return stored

    async def _token_request(
        self, server: ServerSettings, endpoint: str, client: ClientRegistration, form: dict[str, str]
    ) -> tuple[int, JSON]:
        await UrlGuard.for_server(server.url or "", _oauth(server)).check(endpoint)
        headers = {"accept": "application/json"}
        form = dict(form)
        if client.client_secret is not None and client.auth_method == "client_secret_basic":
            pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = client.client_id
            if client.client_secret is not None:
                form["client_secret"] = client.client_secret
        try:
            with anyio.fail_after(_oauth(server).http_timeout_s):
                response = await self._http.post(endpoint, data=form, headers=headers)
        except (httpx2.HTTPError, TimeoutError) as exc:
            raise UpstreamAuthError(detail=f"token endpoint unreachable: {type(exc).__name__}") from exc
        return response.status_code, _json_body(response)

    def _token_set(
        self, body: JSON, previous: TokenSet | None, issuer: str, client_id: str, resource: str, endpoint: str
    ) -> TokenSet:
        access = body.get("access_token")
        if not isinstance(access, str) or not access or str(body.get("token_type", "")).lower() != "bearer":
            raise UpstreamAuthError(detail="the token endpoint sent no bearer access token")
        expires_in = body.get("expires_in")
        refresh = body.get("refresh_token")
        return TokenSet(
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) else (previous.refresh_token if previous else None),
            expires_at=self.clock() + float(expires_in) if isinstance(expires_in, int | float) else None,
            scope=body.get("scope") if isinstance(body.get("scope"), str) else (previous.scope if previous else None),
            issuer=issuer,
            client_id=client_id,
            resource=resource,
            token_endpoint=endpoint,
        )


def _oauth(server: ServerSettings) -> UpstreamOAuthSettings:
    oauth: UpstreamOAuthSettings | None = getattr(server, "oauth", None)
    if oauth is None:
        raise UpstreamAuthError(detail=f"server {server.id!r} has no oauth settings")
    return oauth


def _pick_auth_method(supported: tuple[str, ...], has_secret: bool) -> str:
    if not has_secret:
        return "none"
    if not supported or "client_secret_basic" in supported:
        return "client_secret_basic"
    if "client_secret_post" in supported:
        return "client_secret_post"
    return "none"


def _asdict(registration: ClientRegistration) -> JSON:
    return {k: getattr(registration, k) for k in registration.__slots__}


def _error_code(body: JSON) -> str:
    """The token endpoint's `error`, if it is an RFC 6749 error code (audited: never echo anything else)."""
    error = body.get("error")
    return error if isinstance(error, str) and re.fullmatch(r"[a-z_]{1,40}", error) else "unknown"


def _json_body(response: httpx2.Response) -> JSON:
    try:
        body = orjson.loads(response.content) if len(response.content) < 256 * 1024 else None
    except orjson.JSONDecodeError:
        body = None
    return body if isinstance(body, dict) else {}


__all__ = ["ClientRegistration", "OAuthClient", "TokenSet", "VaultError"]

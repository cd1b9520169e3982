"""The token endpoint (authorization_code, refresh_token, client_credentials) and revocation (RFC 7009).

Client authentication (RFC 6749 §2.3): public clients send `client_id`; confidential ones HTTP Basic
(`client_secret_basic`, id and secret form-urlencoded) or `client_secret`/`client_id` in the body
(`client_secret_post`). Presenting two methods at once, or a secret for a public client, is refused.

Errors are RFC 6749 §5.2 JSON (`invalid_client` is 401, with `WWW-Authenticate: Basic` when Basic was used).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import timedelta
from typing import Any, NoReturn
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import Response

from portico.identity.authserver.browser import BrowserFlow
from portico.identity.authserver.context import ServerContext
from portico.identity.authserver.model import Client, IssuedTokens, OAuthError, new_secret, pkce_matches, utc
from portico.identity.authserver.web import client_ip, json_response, oauth_error_response, read_form
from portico.identity.login import LoginIdentity
from portico.identity.tokens import InvalidTokenError, TokenVerifier
from portico.identity.users import UserError, UserNotFoundError

_GRANTS = ("authorization_code", "refresh_token", "client_credentials")


def _invalid_grant(public: str = "The grant is invalid, expired or revoked", detail: str | None = None) -> OAuthError:
    return OAuthError("invalid_grant", public, detail=detail)


def _claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (only for tokens this server just signed, or before verifying)."""
    segment = token.split(".")[1]
    value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    if not isinstance(value, dict):
        raise ValueError("payload is not an object")
    return value


class TokenEndpoint:
    def __init__(self, ctx: ServerContext, flow: BrowserFlow) -> None:
        self.ctx = ctx
        self.flow = flow  # for the scope and resource rules shared with /oauth/authorize
        settings = ctx.tokens.model_copy(update={"verify_cache_entries": 0})
        self._verifier = TokenVerifier(ctx.keyring, settings, ctx.clock)

    # ------------------------------------------------------------------------------------ /oauth/token

    async def token(self, request: Request) -> Response:
        basic = "authorization" in request.headers
        try:
            form = await read_form(request)
            client = await self.authenticate_client(request, form)
            grant_type = form.get("grant_type", "")
            if grant_type not in _GRANTS:
                raise OAuthError("unsupported_grant_type", "The grant type is not supported")
            if grant_type not in client.grant_types:
                raise OAuthError("unauthorized_client", "This client may not use this grant type")
            if grant_type == "authorization_code":
                issued = await self._authorization_code(client, form, request)
            elif grant_type == "refresh_token":
                issued = await self._refresh(client, form, request)
            else:
                issued = await self._client_credentials(client, form, request)
        except OAuthError as exc:
            headers = {"www-authenticate": 'Basic realm="portico"'} if exc.status == 401 and basic else None
            return oauth_error_response(exc, headers)
        return json_response(issued.body())

    async def authenticate_client(self, request: Request, form: dict[str, str]) -> Client:
        """The client making this request, authenticated as it registered.

        Raises:
            OAuthError: invalid_client (401) or invalid_request.
        """
        header = request.headers.get("authorization")
        secret: str | None = None
        client_id = form.get("client_id")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "basic" or "client_secret" in form:
                raise OAuthError("invalid_client", "Unsupported or repeated client authentication", status=401)
            try:
                basic_id, sep, basic_secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError("invalid_client", "Malformed Basic credentials", status=401) from None
            if not sep:
                raise OAuthError("invalid_client", "Malformed Basic credentials", status=401)
            basic_id, secret = unquote_plus(basic_id), unquote_plus(basic_secret)
            if client_id is not None and client_id != basic_id:
                raise OAuthError("invalid_client", "Client ids disagree", status=401)
            client_id = basic_id
        elif "client_secret" in form:
            secret = form["client_secret"]
        if not client_id:
            raise OAuthError("invalid_client", "Client authentication required", status=401)
        try:
            client = await self.ctx.clients.get(client_id)
        except OAuthError:
            client = None
        if client is None:
            raise OAuthError("invalid_client", "Client authentication failed", status=401, detail="unknown client")
        if client.confidential:
            if secret is None or not client.secret_matches(secret):
                self.ctx.audit_event(
                    "oauth.client_auth",
                    "denied",
                    client_id=client.client_id,
                    ip=client_ip(request),
                    reason="bad_secret",
                )
                raise OAuthError("invalid_client", "Client authentication failed", status=401, detail="bad secret")
            method = "client_secret_basic" if header is not None else "client_secret_post"
            if client.source == "dcr" and method != client.auth_method:
                raise OAuthError("invalid_client", "Client authentication failed", status=401, detail="wrong method")
        elif secret is not None:
            raise OAuthError("invalid_client", "Client authentication failed", status=401, detail="public client")
        return client

    async def _authorization_code(self, client: Client, form: dict[str, str], request: Request) -> IssuedTokens:
        ctx = self.ctx
        code, redirect_uri, verifier = form.get("code"), form.get("redirect_uri"), form.get("code_verifier")
        if not code or not redirect_uri:
            raise OAuthError("invalid_request", "code and redirect_uri are required")
        now = ctx.now()
        redeemed = await ctx.grants.redeem_code(code, now)
        if redeemed.replayed:
            await self._replayed(
                "oauth.code_replay", client, request, "authorization code reused: tokens issued from it revoked"
            )
        grant = redeemed.grant
        if grant is None:
            raise _invalid_grant(detail="unknown or expired code")
        if grant.client_id != client.client_id:
            raise _invalid_grant(detail="code issued to another client")
        if grant.redirect_uri != redirect_uri:
            raise _invalid_grant("redirect_uri differs from the authorization request")
        if not verifier or not pkce_matches(verifier, grant.code_challenge):
            raise _invalid_grant("PKCE verification failed")
        resource = form.get("resource")
        if resource is not None and resource != grant.resource:
            raise OAuthError("invalid_target", "resource differs from the authorized one")
        family_expires = now + timedelta(seconds=ctx.settings.refresh_ttl_s)
        await ctx.grants.start_family(grant, now, family_expires)
        # A sign-in session may outlive a change to the account: disabled since, or in other groups now.
        identity = await self._current_identity(grant.identity, grant.family_id)
        issued = await self._issue(
            client, grant.family_id, identity, grant.scope, grant.resource, family_expires.timestamp()
        )
        ctx.audit_event(
            "oauth.token",
            "ok",
            subject=grant.identity.subject,
            client_id=client.client_id,
            ip=client_ip(request),
            extra={"grant_type": "authorization_code", "resource": grant.resource},
        )
        return issued

    async def _refresh(self, client: Client, form: dict[str, str], request: Request) -> IssuedTokens:
        ctx = self.ctx
        token = form.get("refresh_token")
        if not token or len(token) > 256:
            raise OAuthError("invalid_request", "refresh_token is required")
        now = ctx.now()
        redeemed = await ctx.grants.rotate_refresh(token, now)
        if redeemed.replayed:
            await self._replayed("oauth.refresh_reuse", client, request, "refresh token reused: family revoked")
        family = redeemed.family
        if family is None:
            raise _invalid_grant(detail="unknown, expired or revoked refresh token")
        if family.client_id != client.client_id:
            await ctx.grants.revoke_family(family.id, now)
            await self.sync_revocations()
            raise _invalid_grant(detail="refresh token of another client")
        scope = family.scope
        if form.get("scope"):
            asked = tuple(dict.fromkeys(s for s in form["scope"].split(" ") if s))
            if not set(asked) <= set(family.scope):
                raise OAuthError("invalid_scope", "A refresh may narrow the scope, never widen it")
            scope = asked
        resource = form.get("resource")
        if resource is not None and resource != family.resource:
            raise OAuthError("invalid_target", "A refresh may not change the resource")
        identity = await self._current_identity(family.identity, family.id)
        issued = await self._issue(
            client, family.id, identity, scope, family.resource, family.expires_at, refresh_scope=family.scope
        )
        ctx.audit_event(
            "oauth.token",
            "ok",
            subject=identity.subject,
            client_id=client.client_id,
            ip=client_ip(request),
            extra={"grant_type": "refresh_token", "resource": family.resource},
        )
        return issued

    async def _replayed(self, event: str, client: Client, request: Request, reason: str) -> NoReturn:
        """A spent code or refresh token presented again: its family is already revoked (by the store); audit
        it, pull the revocations in, refuse."""
        self.ctx.audit_event(event, "denied", client_id=client.client_id, ip=client_ip(request), reason=reason)
        await self.sync_revocations()
        raise _invalid_grant(detail=event.removeprefix("oauth."))

    async def _current_identity(self, identity: LoginIdentity, family_id: str) -> LoginIdentity:
        """A local user's groups re-read at each code exchange and refresh; a disabled or deleted user's family
        is revoked."""
        if identity.idp != "local":
            return identity
        try:
            user = await self.ctx.users.get_user(identity.username)
        except UserNotFoundError:
            user = None
        except UserError as exc:
            raise OAuthError("server_error", "Temporarily unavailable", status=500, detail=str(exc)) from exc
        if user is None or user.disabled or user.subject != identity.subject:
            await self.ctx.grants.revoke_family(family_id, self.ctx.now())
            await self.sync_revocations()
            raise _invalid_grant(detail="user disabled or gone")
        return LoginIdentity(
            subject=identity.subject,
            username=identity.username,
            groups=user.groups,
            amr=identity.amr,
            idp=identity.idp,
            display_name=user.display_name,
        )

    async def _client_credentials(self, client: Client, form: dict[str, str], request: Request) -> IssuedTokens:
        if not client.confidential or client.subject is None:
            raise OAuthError("unauthorized_client", "Only configured confidential clients may use client_credentials")
        scope = self.flow.requested_scope(form.get("scope"), client)
        resource = self.flow.requested_resource(form.get("resource"), client)
        access = self.ctx.issuer.issue(
            client.subject, resource, scopes=scope, client_id=client.client_id, groups=client.groups
        )
        self.ctx.audit_event(
            "oauth.token",
            "ok",
            subject=client.subject,
            client_id=client.client_id,
            ip=client_ip(request),
            extra={"grant_type": "client_credentials", "resource": resource},
        )
        return IssuedTokens(access_token=access, expires_in=self.ctx.tokens.access_ttl_s, scope=scope)

    async def _issue(
        self,
        client: Client,
        family_id: str,
        identity: LoginIdentity,
        scope: tuple[str, ...],
        resource: str,
        family_expires_at: float,
        refresh_scope: tuple[str, ...] | None = None,
    ) -> IssuedTokens:
        ctx = self.ctx
        now = ctx.now()
        access = ctx.issuer.issue(
            identity.subject,
            resource,
            scopes=scope,
            client_id=client.client_id,
            groups=identity.groups,
            amr=identity.amr,
        )
        claims = _claims(access)
        refresh = new_secret(32) if "refresh_token" in client.grant_types else None
        refresh_expires = min(now.timestamp() + ctx.settings.refresh_idle_ttl_s, family_expires_at)
        recorded = await ctx.grants.issued(
            family_id,
            claims["jti"],
            utc(claims["exp"]),
            refresh,
            refresh_scope or scope,
            resource,
            now,
            utc(refresh_expires),
        )
        if not recorded:  # a replay revoked the family while we were issuing
            await self.sync_revocations()
            raise _invalid_grant(detail="family revoked during issuance")
        return IssuedTokens(access_token=access, expires_in=ctx.tokens.access_ttl_s, scope=scope, refresh_token=refresh)

    async def sync_revocations(self) -> None:
        """Pull revocations just written (by this request or a replica) into the in-memory set."""
        for jti, exp in await self.ctx.grants.revoked_since(None, self.ctx.now()):
            self.ctx.remember_revoked(jti, exp)

    # ------------------------------------------------------------------------------------ /oauth/revoke

    async def revoke(self, request: Request) -> Response:
        """RFC 7009: 200 whether or not the token was known; only the client it was issued to can revoke it."""
        ctx = self.ctx
        basic = "authorization" in request.headers
        try:
            form = await read_form(request)
            client = await self.authenticate_client(request, form)
            token = form.get("token")
            if not token:
                raise OAuthError("invalid_request", "token is required")
        except OAuthError as exc:
            headers = {"www-authenticate": 'Basic realm="portico"'} if exc.status == 401 and basic else None
            return oauth_error_response(exc, headers)
        now = ctx.now()
        if token.count(".") == 2:
            await self._revoke_access(client, token, request)
        elif len(token) <= 256:
            owner = await ctx.grants.family_of_refresh(token)
            if owner is not None and owner[1] == client.client_id:
                jtis = await ctx.grants.revoke_family(owner[0], now)
                await self.sync_revocations()
                ctx.audit_event(
                    "oauth.revoke",
                    "ok",
                    client_id=client.client_id,
                    ip=client_ip(request),
                    extra={"token_type": "refresh_token", "access_tokens_revoked": len(jtis)},
                )
        return json_response({})

    async def _revoke_access(self, client: Client, token: str, request: Request) -> None:
        try:
            audience = _claims(token).get("aud")
            if not isinstance(audience, str):
                return
            verified = self._verifier.verify(token, audience)
        except (InvalidTokenError, ValueError, IndexError, binascii.Error):
            return
        if verified.client_id != client.client_id:
            return
        await self.ctx.grants.revoke_access(verified.jti, utc(verified.expires_at), self.ctx.now())
        self.ctx.remember_revoked(verified.jti, verified.expires_at)
        self.ctx.audit_event(
            "oauth.revoke",
            "ok",
            subject=verified.subject,
            client_id=client.client_id,
            ip=client_ip(request),
            extra={"token_type": "access_token"},
        )

"""The browser half of the authorization code flow: /oauth/authorize, sign-in (password, then TOTP), consent,
sign-out, and the hand-over from an external IdP (`complete_external_login`).

    GET  /oauth/authorize   validate (RFC 6749 §4.1.2.1 order) → pending request → /login or /consent
    GET  /login             the sign-in form (or the code form, once the password held for a TOTP user)
    POST /login             username + password            → /consent, or the code form
    POST /login/otp         the TOTP code                  → /consent
    GET  /consent           the consent page
    POST /consent           approve → code to the client; deny → access_denied to the client
    GET|POST /logout        end the login session

A pending request is bound to the browser that started it: /oauth/authorize sets a random cookie whose hash is
stored with the request, and every later page checks it, besides the per-request CSRF token every form carries.
Between the password and the code, the password is kept server-side sealed (AES-GCM) under a key derived from
that cookie (which the database does not hold), so it is never echoed into a hidden field and a copy of the
database alone cannot open it. It is cleared as soon as the step ends.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from datetime import timedelta
from urllib.parse import urlencode

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.requests import Request
from starlette.responses import Response

from portico.identity.authserver import pages
from portico.identity.authserver.context import BROWSER_COOKIE, SESSION_COOKIE, ServerContext, log
from portico.identity.authserver.model import (
    PKCE_CHALLENGE,
    Client,
    OAuthError,
    PendingRequest,
    digest,
    new_secret,
)
from portico.identity.authserver.settings import SCOPE_TOKEN
from portico.identity.authserver.web import (
    SlidingWindow,
    client_ip,
    html,
    html_error,
    read_form,
    redirect,
    single_values,
)
from portico.identity.login import LoginIdentity
from portico.identity.users import AuthFailure

_GENERIC_LOGIN_FAILURE = "Invalid username or password, or too many failed attempts: try again later"
_EXPIRED = "This sign-in request has expired or was already used. Return to the application and start again."
_OTHER_BROWSER = "This sign-in request was started in another browser. Return to the application and start again."


def add_query(uri: str, params: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def _seal_key(browser: str, request_id: str) -> bytes:
    return hmac.new(browser.encode(), f"portico-otp-step:{request_id}".encode(), hashlib.sha256).digest()


def seal_password(password: str, browser: str, request_id: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_seal_key(browser, request_id)).encrypt(nonce, password.encode(), request_id.encode())


def open_password(sealed: bytes, browser: str, request_id: str) -> str | None:
    try:
        key = AESGCM(_seal_key(browser, request_id))
        return key.decrypt(sealed[:12], sealed[12:], request_id.encode()).decode()
    except Exception:
        return None


class BrowserFlow:
    """Handlers for the pages a person sees. Each returns a Starlette response."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self._failures = SlidingWindow(settings.failed_sign_ins_per_address, settings.failed_sign_in_window_s)

    def _throttled(self, pending: PendingRequest, ip: str | None) -> Response | None:
        """A refusal when this address has failed to sign in too often lately (checked before any password)."""
        if ip is None or not self._failures.full(ip):
            return None
        self.ctx.audit_event("oauth.login", "denied", client_id=pending.client_id, ip=ip, reason="throttled")
        page = pages.error_page("Too many failed sign-ins from your network. Try again in a few minutes.")
        return html(page, 429, headers=pages.security_headers(pending.redirect_uri))

    # ------------------------------------------------------------------------------------ authorize

    async def authorize(self, request: Request) -> Response:
        ctx = self.ctx
        try:
            q = single_values(request.query_params.multi_items())
        except OAuthError:
            return html_error("The authorization request repeats a parameter.")
        client_id = q.get("client_id")
        if not client_id:
            return html_error("The authorization request names no client.")
        try:
            client = await ctx.clients.get(client_id)
        except OAuthError as exc:
            log.info("authorize: client metadata refused: %s", exc.detail)
            return html_error("The client's metadata document could not be used.")
        if client is None:
            return html_error("Unknown client.")
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri or not client.redirect_uri_allowed(redirect_uri):
            return html_error("The redirect URI is missing or not registered for this client.")
        state = q.get("state")
        try:
            scope, resource, challenge = self._validate(q, client)
        except OAuthError as exc:
            ctx.audit_event("oauth.authorize", "denied", client_id=client_id, ip=client_ip(request), reason=exc.error)
            return redirect(self._error_location(redirect_uri, exc, state))
        browser = request.cookies.get(BROWSER_COOKIE)
        if not browser or len(browser) > 64:
            browser = new_secret(24)
        pending = PendingRequest(
            id=new_secret(24),
            browser_hash=digest(browser),
            csrf=new_secret(24),
            client_id=client.client_id,
            client_name=client.name,
            redirect_uri=redirect_uri,
            scope=scope,
            resource=resource,
            state=state,
            code_challenge=challenge,
        )
        await ctx.grants.save_request(pending, ctx.now(), ctx.settings.request_ttl_s)
        identity = await ctx.grants.session(request.cookies.get(SESSION_COOKIE, ""), ctx.now(), self._idle())
        if identity is not None:
            response = await self._signed_in(pending, identity)
        else:
            response = redirect(add_query(ctx.path("/login"), {"request": pending.id}))
        self._set_cookie(response, BROWSER_COOKIE, browser, ctx.settings.request_ttl_s)
        return response

    def _validate(self, q: dict[str, str], client: Client) -> tuple[tuple[str, ...], str, str]:
        if q.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "Only response_type=code is supported")
        if "authorization_code" not in client.grant_types:
            raise OAuthError("unauthorized_client", "This client may not use the authorization code grant")
        challenge = q.get("code_challenge")
        if not challenge:
            raise OAuthError("invalid_request", "code_challenge is required (PKCE)")
        if q.get("code_challenge_method") != "S256":
            raise OAuthError("invalid_request", "code_challenge_method must be S256")
        if not PKCE_CHALLENGE.fullmatch(challenge):
            raise OAuthError("invalid_request", "code_challenge is not a base64url SHA-256 digest")
        scope = self.requested_scope(q.get("scope"), client)
        resource = self.requested_resource(q.get("resource"), client)
        return scope, resource, challenge

    def requested_scope(self, raw: str | None, client: Client) -> tuple[str, ...]:
        """The scopes asked for (default: every scope the client may have), each offered and allowed.

        Raises:
            OAuthError: invalid_scope.
        """
        offered = [s for s in self.ctx.settings.scopes if client.scopes is None or s in client.scopes]
        if raw is None or raw.strip() == "":
            if not offered:
                raise OAuthError("invalid_scope", "No scope is available to this client")
            return tuple(offered)
        asked = [s for s in raw.split(" ") if s]
        if not all(SCOPE_TOKEN.fullmatch(s) for s in asked) or not set(asked) <= set(offered):
            raise OAuthError("invalid_scope", "A requested scope is unknown or not allowed for this client")
        return tuple(dict.fromkeys(asked))

    def requested_resource(self, raw: str | None, client: Client) -> str:
        """The resource asked for (RFC 8707; default: the portal resource), protected by Portico and allowed.

        Raises:
            OAuthError: invalid_target.
        """
        resource = raw if raw else self.ctx.default_resource()
        if resource is None or resource not in set(self.ctx.resources()):
            raise OAuthError("invalid_target", "The requested resource is not served here")
        if client.resources is not None and resource not in client.resources:
            raise OAuthError("invalid_target", "This client may not access the requested resource")
        return resource

    def _error_location(self, redirect_uri: str, exc: OAuthError, state: str | None) -> str:
        return add_query(
            redirect_uri,
            {"error": exc.error, "error_description": exc.public, "state": state, "iss": self.ctx.issuer_url},
        )

    # ------------------------------------------------------------------------------------ sign-in

    async def login_page(self, request: Request) -> Response:
        pending, problem = await self._pending(request, request.query_params.get("request", ""))
        if pending is None:
            return problem
        if pending.step == "consent":
            return redirect(add_query(self.ctx.path("/consent"), {"request": pending.id}))
        if pending.step == "otp":
            page = pages.otp_page(pending.id, pending.csrf, base=self.ctx.base_path)
            return html(page, headers=pages.security_headers(pending.redirect_uri))
        return self._login_form(pending)

    def _login_form(self, pending: PendingRequest, error: str | None = None, username: str = "") -> Response:
        label = pending.client_name or pending.client_id
        return html(
            pages.login_page(
                pending.id,
                pending.csrf,
                label,
                error=error,
                username=username,
                external=self.ctx.external_logins,
                base=self.ctx.base_path,
            ),
            200 if error is None else 401,
            headers=pages.security_headers(pending.redirect_uri),
        )

    async def login_submit(self, request: Request) -> Response:
        pending, form, problem = await self._posted(request)
        if pending is None or form is None:
            return problem
        if pending.step != "login":
            return redirect(add_query(self.ctx.path("/login"), {"request": pending.id}))
        username, password = form.get("username", "").strip(), form.get("password", "")
        if not username or not password or len(username) > 128 or len(password) > 1024:
            return self._login_form(pending, "Enter your username and password.", username[:128])
        ip = client_ip(request)
        if (refused := self._throttled(pending, ip)) is not None:
            return refused
        result = await self.ctx.users.authenticate(username, password)
        if result.failure is AuthFailure.MFA_REQUIRED:
            sealed = seal_password(password, request.cookies.get(BROWSER_COOKIE, ""), pending.id)
            await self.ctx.grants.advance_request(pending.id, "otp", username=username.lower(), sealed_password=sealed)
            return redirect(add_query(self.ctx.path("/login"), {"request": pending.id}))
        if not result.ok or result.subject is None:
            failure = result.failure or AuthFailure.BAD_CREDENTIALS
            self.ctx.audit_event("oauth.login", "denied", client_id=pending.client_id, ip=ip, reason=failure.value)
            if ip is not None:
                self._failures.record(ip)
            message = failure.public if failure is AuthFailure.DISABLED else _GENERIC_LOGIN_FAILURE
            return self._login_form(pending, message, username[:128])
        identity = LoginIdentity(
            subject=result.subject, username=username.lower(), groups=result.groups, amr=result.amr, idp="local"
        )
        return await self._logged_in(request, pending, identity)

    async def otp_submit(self, request: Request) -> Response:
        pending, form, problem = await self._posted(request)
        if pending is None or form is None:
            return problem
        if pending.step != "otp" or pending.username is None or pending.sealed_password is None:
            return redirect(add_query(self.ctx.path("/login"), {"request": pending.id}))
        password = open_password(pending.sealed_password, request.cookies.get(BROWSER_COOKIE, ""), pending.id)
        code = form.get("code", "").strip()
        ip = client_ip(request)
        if password is None:
            await self.ctx.grants.advance_request(pending.id, "login")
            return self._login_form(pending, "Please sign in again.")
        if (refused := self._throttled(pending, ip)) is not None:
            return refused
        result = await self.ctx.users.authenticate(pending.username, password, code[:16])
        if result.failure is AuthFailure.BAD_OTP or result.failure is AuthFailure.MFA_REQUIRED:
            self.ctx.audit_event("oauth.login", "denied", client_id=pending.client_id, ip=ip, reason="bad_otp")
            if ip is not None:
                self._failures.record(ip)
            page = pages.otp_page(pending.id, pending.csrf, error=AuthFailure.BAD_OTP.public, base=self.ctx.base_path)
            return html(page, 401, headers=pages.security_headers(pending.redirect_uri))
        if not result.ok or result.subject is None:
            failure = result.failure or AuthFailure.BAD_CREDENTIALS
            self.ctx.audit_event("oauth.login", "denied", client_id=pending.client_id, ip=ip, reason=failure.value)
            await self.ctx.grants.advance_request(pending.id, "login")
            message = failure.public if failure is AuthFailure.DISABLED else _GENERIC_LOGIN_FAILURE
            return self._login_form(pending, message)
        amr = tuple(dict.fromkeys((*result.amr, "mfa")))
        identity = LoginIdentity(
            subject=result.subject, username=pending.username, groups=result.groups, amr=amr, idp="local"
        )
        return await self._logged_in(request, pending, identity)

    async def complete_external_login(self, request: Request, request_id: str, identity: LoginIdentity) -> Response:
        """Continue a pending authorization with someone signed in elsewhere (an external IdP, via `identity/sso`).

        `request` is the browser's request to the SSO callback (its cookies bind it to the pending request);
        `request_id` is the `request` parameter the login page passed to the SSO start path. Returns the response
        to send: the consent page redirect (or, with remembered consent, the redirect to the client), with the
        login-session cookie set; or an HTML error page.
        """
        pending, problem = await self._pending(request, request_id)
        if pending is None:
            return problem
        if pending.step == "consent":
            return redirect(add_query(self.ctx.path("/consent"), {"request": pending.id}))
        return await self._logged_in(request, pending, identity)

    async def _logged_in(self, request: Request, pending: PendingRequest, identity: LoginIdentity) -> Response:
        ctx = self.ctx
        session_id = new_secret(32)
        await ctx.grants.create_session(session_id, identity, ctx.now(), ctx.settings.session_ttl_s)
        ctx.audit_event(
            "oauth.login",
            "ok",
            subject=identity.subject,
            client_id=pending.client_id,
            ip=client_ip(request),
            extra={"amr": list(identity.amr), "idp": identity.idp},
        )
        response = await self._signed_in(pending, identity)
        self._set_cookie(response, SESSION_COOKIE, session_id, ctx.settings.session_ttl_s)
        return response

    async def _signed_in(self, pending: PendingRequest, identity: LoginIdentity) -> Response:
        ctx = self.ctx
        if ctx.settings.remember_consent and await ctx.grants.has_consent(
            identity.subject, pending.client_id, pending.resource, pending.scope
        ):
            return await self._issue_code(pending, identity)
        await ctx.grants.advance_request(pending.id, "consent", identity=identity)
        return redirect(add_query(ctx.path("/consent"), {"request": pending.id}))

    # ------------------------------------------------------------------------------------ consent

    async def consent_page(self, request: Request) -> Response:
        pending, problem = await self._pending(request, request.query_params.get("request", ""))
        if pending is None:
            return problem
        if pending.step != "consent" or pending.identity is None:
            return redirect(add_query(self.ctx.path("/login"), {"request": pending.id}))
        identity = pending.identity
        return html(
            pages.consent_page(
                pending.id,
                pending.csrf,
                user=identity.display_name or identity.username,
                client_name=pending.client_name,
                client_id=pending.client_id,
                redirect_uri=pending.redirect_uri,
                scopes=pending.scope,
                resource=pending.resource,
                base=self.ctx.base_path,
            ),
            headers=pages.security_headers(pending.redirect_uri),
        )

    async def consent_submit(self, request: Request) -> Response:
        ctx = self.ctx
        pending, form, problem = await self._posted(request)
        if pending is None or form is None:
            return problem
        identity = pending.identity
        if pending.step != "consent" or identity is None:
            return redirect(add_query(ctx.path("/login"), {"request": pending.id}))
        if form.get("decision") != "approve":
            if not await ctx.grants.take_request(pending.id):
                return html_error(_EXPIRED)
            ctx.audit_event(
                "oauth.consent",
                "denied",
                subject=identity.subject,
                client_id=pending.client_id,
                ip=client_ip(request),
                reason="access_denied",
            )
            error = OAuthError("access_denied", "The user denied the request")
            return redirect(self._error_location(pending.redirect_uri, error, pending.state))
        if ctx.settings.remember_consent:
            await ctx.grants.remember_consent(
                identity.subject, pending.client_id, pending.resource, pending.scope, ctx.now()
            )
        return await self._issue_code(pending, identity)

    async def _issue_code(self, pending: PendingRequest, identity: LoginIdentity) -> Response:
        ctx = self.ctx
        if not await ctx.grants.take_request(pending.id):  # a double submit: the first one won
            return html_error(_EXPIRED)
        code = new_secret(32)
        expires = ctx.now() + timedelta(seconds=ctx.settings.code_ttl_s)
        await ctx.grants.save_code(code, new_secret(16), pending, identity, expires)
        ctx.audit_event(
            "oauth.authorize",
            "ok",
            subject=identity.subject,
            client_id=pending.client_id,
            extra={"resource": pending.resource, "scope": " ".join(pending.scope)},
        )
        return redirect(add_query(pending.redirect_uri, {"code": code, "state": pending.state, "iss": ctx.issuer_url}))

    # ------------------------------------------------------------------------------------ sign-out

    async def logout(self, request: Request) -> Response:
        browser = request.cookies.get(BROWSER_COOKIE, "")
        csrf = digest(f"logout:{browser}")[:32] if browser else ""
        if request.method == "GET":
            if not browser:
                return html(pages.signed_out_page())
            return html(pages.logout_page(csrf, base=self.ctx.base_path))
        try:
            form = await read_form(request)
        except OAuthError:
            return html_error("Malformed request.")
        if not browser or not hmac.compare_digest(form.get("csrf", ""), csrf):
            return html_error("The sign-out form has expired. Reload the page and try again.")
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            identity = await self.ctx.grants.session(session_id, self.ctx.now(), self._idle())
            await self.ctx.grants.end_session(session_id)
            if identity is not None:
                self.ctx.audit_event("oauth.logout", "ok", subject=identity.subject, ip=client_ip(request))
        response = html(pages.signed_out_page())
        response.delete_cookie(
            SESSION_COOKIE,
            path=self.ctx.base_path or "/",
            secure=self.ctx.secure_cookies,
            httponly=True,
            samesite="lax",
        )
        return response

    # ------------------------------------------------------------------------------------ helpers

    def _idle(self) -> int:
        return self.ctx.settings.session_idle_ttl_s

    def _set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=self.ctx.base_path or "/",
            secure=self.ctx.secure_cookies,
            httponly=True,
            samesite="lax",
        )

    async def _pending(self, request: Request, request_id: str) -> tuple[PendingRequest | None, Response]:
        """The pending request, if it is live and was started in this browser; else an error page."""
        pending = await self.ctx.grants.get_request(request_id, self.ctx.now())
        if pending is None:
            return None, html_error(_EXPIRED)
        browser = request.cookies.get(BROWSER_COOKIE, "")
        if not browser or not hmac.compare_digest(digest(browser), pending.browser_hash):
            return None, html_error(_OTHER_BROWSER, 403)
        return pending, html_error(_EXPIRED)

    async def _posted(self, request: Request) -> tuple[PendingRequest | None, dict[str, str] | None, Response]:
        """A form post's pending request, after the browser binding and the CSRF token are checked."""
        try:
            form = await read_form(request)
        except OAuthError:
            return None, None, html_error("Malformed request.")
        pending, problem = await self._pending(request, form.get("request", ""))
        if pending is None:
            return None, None, problem
        if not hmac.compare_digest(form.get("csrf", "").encode(), pending.csrf.encode()):
            return None, None, html_error("The form has expired. Reload the page and try again.", 403)
        return pending, form, problem

"""`SsoLogin`: the two HTTP endpoints of signing in through an external IdP, as one ASGI callable.

    GET /login/sso/<id>?request=<pending request id>   → 302 to the IdP (state, nonce, PKCE S256), sealed cookie
    GET /login/sso/<id>/callback?code=…&state=…         → `on_login(request, request id, identity)`'s response

The authorization server mounts it in front of its own routes (`if sso.handles(path): await sso(...)`) and puts
`sso.links(request_id)` on its login page. Every failure is an HTML page with a public sentence and a reason
code (never a stack trace, a token or an echo of the query), and an audit record (`method: auth.sso`,
`outcome: denied`, `reason: <SsoFailure>`); a success is recorded as `outcome: ok` before the response leaves
— if it cannot be recorded, the sign-in is not completed (fail closed).
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple
from urllib.parse import quote, urlsplit

import httpx2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portico.audit.log import AuditError, AuditLog
from portico.errors import PorticoError
from portico.identity.login import LoginIdentity
from portico.identity.sso import flow
from portico.identity.sso.errors import SsoError, SsoFailure
from portico.identity.sso.provider import OidcProvider
from portico.identity.sso.settings import SsoProviderSettings, check_url
from portico.identity.sso.state import StateSealer, cookie_name

log = logging.getLogger(__name__)

PATH_PREFIX = "/login/sso/"
REQUEST_ID = re.compile(r"[A-Za-z0-9._~-]{1,256}")
_PATH = re.compile(r"/login/sso/([a-z0-9][a-z0-9_-]{0,39})(/callback)?")
# RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6, RFC 8707: the only IdP error codes shown back to the user.
KNOWN_IDP_ERRORS = frozenset(
    {"invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type", "invalid_scope",
     "server_error", "temporarily_unavailable", "interaction_required", "login_required",
     "account_selection_required", "consent_required", "invalid_request_uri", "invalid_request_object",
     "request_not_supported", "request_uri_not_supported", "registration_not_supported", "invalid_target"}
)  # fmt: skip
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_MAX_USED_STATES = 100_000

OnLogin = Callable[[Request, str, LoginIdentity], Awaitable[ASGIApp]]
Clock = Callable[[], float]


class SsoLink(NamedTuple):
    """One "Sign in with …" button for the login page."""

    id: str
    display_name: str
    url: str


class SsoLogin:
    """Sign-in through external OIDC identity providers, handing each verified identity to `on_login`.

    `on_login(request, request_id, identity)` belongs to the authorization server (its
    `complete_external_login` has this shape): `request` is the browser's callback request, whose cookies bind
    it to the pending authorization request `request_id`. It returns the ASGI response to send (a redirect to
    consent or to the client, or its own error page). It may raise a `PorticoError` instead: the user then sees
    an SSO error page with its `public`. The `auth.sso` audit record says the IdP sign-in succeeded; what the
    authorization server then does is its own record.

    `state_key` (at least 32 random bytes) seals the sign-in state the browser carries to the IdP and back (see
    `portico.identity.sso.state`); replicas must share it. `http` is the client for calls to the IdPs (one is
    made, and closed by `aclose`, when not given). `clock` gives Unix seconds.
    """

    def __init__(
        self,
        providers: Sequence[SsoProviderSettings],
        public_url: str,
        on_login: OnLogin,
        *,
        state_key: bytes,
        audit: AuditLog | None = None,
        http: httpx2.AsyncClient | None = None,
        clock: Clock = time.time,
        state_ttl_s: float = 600,
    ) -> None:
        """Raises:
        ValueError: two providers share an id, `public_url` is not an https URL (http on loopback), or the
            state key is too short.
        """
        ids = [p.id for p in providers]
        if len(set(ids)) != len(ids):
            raise ValueError("SSO provider ids must be unique")
        check_url(public_url, "public_url")
        self.public_url = public_url.rstrip("/")
        self._base_path = urlsplit(self.public_url).path
        self._secure = urlsplit(self.public_url).scheme == "https"
        self._on_login = on_login
        self._sealer = StateSealer(state_key)
        self._audit = audit
        self._own_http = http is None
        self._http = http or httpx2.AsyncClient(trust_env=False)
        self._clock = clock
        self._state_ttl_s = state_ttl_s
        self._providers = {p.id: OidcProvider(p, self._http, clock) for p in providers}
        self._used: dict[str, float] = {}  # state → expiry: one callback per state, within this process

    async def aclose(self) -> None:
        """Close the HTTP client, if `SsoLogin` made it."""
        if self._own_http:
            await self._http.aclose()

    def handles(self, path: str) -> bool:
        """Whether `path` (relative to the app's root) is one of the SSO endpoints."""
        return _PATH.fullmatch(path) is not None

    def links(self, request_id: str) -> list[SsoLink]:
        """The sign-in buttons for the pending authorization request `request_id`, in configuration order."""
        query = quote(request_id, safe="")
        return [
            SsoLink(p.id, p.display_name, f"{self.public_url}{PATH_PREFIX}{p.id}?request={query}")
            for p in (provider.settings for provider in self._providers.values())
        ]

    def redirect_uri(self, provider_id: str) -> str:
        """The callback URL to register at the IdP for `provider_id`."""
        return f"{self.public_url}/login/sso/{provider_id}/callback"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError("SsoLogin serves HTTP only")
        request = Request(scope, receive)
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        match = _PATH.fullmatch(path)
        if match is None or match.group(1) not in self._providers:
            response: ASGIApp = _error_page(SsoError(SsoFailure.UNKNOWN_PROVIDER), "")
        elif request.method != "GET":  # not even HEAD: a prefetching HEAD must not spend a callback's state
            response = Response(status_code=405, headers={"Allow": "GET"})
        elif match.group(2):
            response = await self._callback(request, self._providers[match.group(1)])
        else:
            response = await self._begin(request, self._providers[match.group(1)])
        await response(scope, receive, send)

    async def _begin(self, request: Request, provider: OidcProvider) -> Response:
        request_id = request.query_params.get("request", "")
        try:
            if not REQUEST_ID.fullmatch(request_id):
                raise SsoError(SsoFailure.BAD_REQUEST, detail="missing or malformed request parameter")
            begun = await flow.begin(
                provider,
                redirect_uri=self.redirect_uri(provider.settings.id),
                request_id=request_id,
                resource=self.public_url,
                now=self._clock(),
                ttl_s=self._state_ttl_s,
            )
        except SsoError as exc:
            return self._refuse(request, provider, exc)
        response = RedirectResponse(begun.authorization_url, status_code=302, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            cookie_name(begun.pending.state),
            self._sealer.seal(begun.pending),
            max_age=int(self._state_ttl_s),
            path=self._cookie_path,
            secure=self._secure,
            httponly=True,
            samesite="lax",
        )
        return response

    async def _callback(self, request: Request, provider: OidcProvider) -> ASGIApp:
        params = request.query_params
        state = params.get("state")
        clear = cookie_name(state) if state else None
        try:
            if not state:
                if "error" in params:
                    raise _idp_error(params.get("error"))
                raise SsoError(SsoFailure.STATE_MISSING)
            sealed = request.cookies.get(cookie_name(state))
            if sealed is None:
                raise SsoError(SsoFailure.STATE_INVALID, detail="no state cookie for this state")
            now = self._clock()
            pending = self._sealer.open(sealed, provider.settings.id, state, now)
            self._use(state, pending.expires_at, now)
            if "error" in params:
                raise _idp_error(params.get("error"))
            metadata = await provider.metadata()
            if "iss" in params and params["iss"] != metadata.issuer:  # RFC 9207 mix-up defence
                raise SsoError(SsoFailure.RESPONSE_ISSUER)
            code = params.get("code")
            if not code:
                raise SsoError(SsoFailure.BAD_REQUEST, detail="callback without code")
            identity = await flow.complete(
                provider,
                self._http,
                pending,
                code=code,
                redirect_uri=self.redirect_uri(provider.settings.id),
                resource=self.public_url,
                now=now,
            )
            try:
                answer = await self._on_login(request, pending.request_id, identity)
            except SsoError:
                raise
            except PorticoError as exc:
                failure = SsoError(SsoFailure.LOGIN_REJECTED, detail=exc.detail, public=exc.public)
                failure.subject = identity.subject
                raise failure from None
            self._record(request, provider, identity.subject, None)
        except SsoError as exc:
            return self._refuse(request, provider, exc, clear)
        except AuditError as exc:
            log.error("sso %s: the sign-in could not be audited: %s", provider.settings.id, exc.detail)
            return _error_page(SsoError(SsoFailure.NOT_RECORDED), "", clear, self._cookie_path)
        return _ClearingCookie(answer, clear, self._cookie_path)

    @property
    def _cookie_path(self) -> str:
        return f"{self._base_path}{PATH_PREFIX}"

    def _use(self, state: str, expires_at: float, now: float) -> None:
        """Mark `state` as used, refusing a second use (expired entries are dropped as we go)."""
        if state in self._used:
            raise SsoError(SsoFailure.STATE_REPLAYED)
        if len(self._used) >= _MAX_USED_STATES:
            self._used = {s: e for s, e in self._used.items() if e > now}
        self._used[state] = expires_at

    def _refuse(self, request: Request, provider: OidcProvider, exc: SsoError, clear: str | None = None) -> Response:
        event_id = secrets.token_hex(8)
        log.info("sso %s: sign-in refused (%s) [%s]: %s", provider.settings.id, exc.reason, event_id, exc.detail)
        try:
            self._record(request, provider, exc.subject, exc, event_id)
        except AuditError as audit_exc:  # nothing was granted; the refusal still stands
            log.error("sso %s: a refused sign-in could not be audited: %s", provider.settings.id, audit_exc.detail)
        return _error_page(exc, event_id, clear, self._cookie_path)

    def _record(
        self,
        request: Request,
        provider: OidcProvider,
        subject: str | None,
        failure: SsoError | None,
        event_id: str | None = None,
    ) -> None:
        if self._audit is None:
            return
        extra = {"idp_error": failure.idp_error} if failure is not None and failure.idp_error else None
        self._audit.event(
            "auth.sso",
            "denied" if failure else "ok",
            subject=subject or "anonymous",
            id=event_id,
            authenticated_by="sso",
            ip=request.client.host if request.client else None,
            target=provider.settings.id,
            reason=str(failure.reason) if failure else None,
            extra=extra,
        )


class _ClearingCookie:
    """`on_login`'s response with the spent state cookie cleared."""

    def __init__(self, app: ASGIApp, cookie: str | None, path: str) -> None:
        self._app = app
        self._header = _clear_header(cookie, path) if cookie else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_clearing(message: Message) -> None:
            if message["type"] == "http.response.start" and self._header is not None:
                message = {**message, "headers": [*message.get("headers", []), self._header]}
            await send(message)

        await self._app(scope, receive, send_clearing)


def _clear_header(cookie: str, path: str) -> tuple[bytes, bytes]:
    value = f"{cookie}=; Max-Age=0; Path={path}; HttpOnly; SameSite=lax"
    return b"set-cookie", value.encode("latin-1")


def _idp_error(code: str | None) -> SsoError:
    shown = code if code in KNOWN_IDP_ERRORS else None
    error = SsoError(
        SsoFailure.IDP_ERROR,
        detail=f"IdP error {shown or 'other'}",
        public=f"The identity provider did not sign you in ({shown})." if shown else None,
    )
    error.idp_error = shown
    return error


def _error_page(exc: SsoError, event_id: str, clear: str | None = None, path: str = "/") -> HTMLResponse:
    reference = f"{exc.reason}" + (f" · {event_id}" if event_id else "")
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in failed · Portico</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}
code{{background:#f3f3f3;padding:0 .25rem}}</style></head>
<body><main id="sso-error" data-reason="{html.escape(str(exc.reason))}">
<h1>Sign-in failed</h1>
<p>{html.escape(exc.public)}</p>
<p>Close this window and start again from your application. If this keeps happening, give your administrator
this reference: <code>{html.escape(reference)}</code></p>
</main></body></html>
"""
    response = HTMLResponse(body, status_code=exc.status, headers=_PAGE_HEADERS)
    if clear:
        response.raw_headers.append(_clear_header(clear, path))
    return response

"""`ConnectApp`: the pages of connecting (and disconnecting) a user's upstream account, as one ASGI callable.

    GET  /connect/<server>?ticket=T          consent page: which upstream, which account at Portico, which
                                             authorization server, scopes and redirect URI; a form (CSRF token
                                             bound to a browser cookie and to the ticket) — nothing is
                                             redirected before the user confirms (confused-deputy guidance)
    POST /connect/<server>                   spends the ticket (single use), registers Portico at the upstream's
                                             AS if needed, sets the sealed state cookie, 303 to the AS's
                                             authorize endpoint (code, PKCE S256, state, resource, scope)
    GET  /connect/<server>/callback          checks state (the cookie must open for it), `iss` (RFC 9207),
                                             exchanges the code, stores the tokens, "Connected" page
    GET  /connect/<server>/disconnect        for the browser's signed-in user: a form (CSRF token bound to the
                                             browser cookie, the server and the user) when they are connected
    POST /connect/<server>/disconnect        deletes that user's tokens and closes their upstream connection

Audit (`upstream.connect`): every outcome of a flow — ok (connected), denied (a refused link, form or state,
the user cancelled, the AS answered an error) or error (the upstream's AS failed, Portico failed) — with the
subject when known, `server_id`, a reason code. A disconnect is `upstream.disconnect` (refusals here too).

Every failure is an HTML page with a public sentence (never a token, a stack trace or an echo of the query).
Pages send `frame-ancestors 'none'`, `X-Frame-Options: DENY`, `no-store`. Cookies are HttpOnly,
SameSite=Lax, and `__Host-`/Secure when Portico's public URL is https.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mcp.client.auth.utils import union_scopes
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from portico.config import ServerSettings
from portico.errors import PorticoError
from portico.upstream.connect_ticket import ConnectError, csrf_cookie_name, disconnect_nonce, state_cookie_name
from portico.upstream.oauth_client import FLOW_TTL_S, OAuthClient
from portico.upstream.oauth_discovery import UpstreamAuthError, check_url_shape, is_loopback_url

log = logging.getLogger("portico.connect")

PATH_PREFIX = "/connect/"
_PATH = re.compile(r"/connect/([a-z0-9][a-z0-9-]{0,47})(/callback|/disconnect)?/?")
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
    "form-action 'self' https: http://127.0.0.1:* http://localhost:*",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MAX_FORM_BYTES = 16 * 1024
_KNOWN_AS_ERRORS = frozenset({"access_denied", "invalid_scope", "invalid_request", "unauthorized_client",
                              "server_error", "temporarily_unavailable", "invalid_target"})  # fmt: skip


SignedIn = Callable[[Request], Awaitable[str | None]]


@dataclass(slots=True)
class _Attempt:
    """What one request has learned so far, for its audit record."""

    method: str
    ip: str | None
    subject: str = "anonymous"
    authenticated_by: str = "none"
    recorded: bool = False


class ConnectApp:
    """The connect pages for the servers with `oauth:` (see the module docstring)."""

    def __init__(
        self, client: OAuthClient, servers: dict[str, ServerSettings], signed_in: SignedIn | None = None
    ) -> None:
        self.client = client
        self._servers = servers
        # Who this browser is signed in to Portico as (the authorization server's session), or None. With it, a
        # connect link works only in a browser signed in as the link's subject: a link minted for someone else
        # (sent to a victim) cannot link the victim's upstream account to that someone's Portico account.
        self._signed_in = signed_in

    async def _require_subject(self, request: Request, subject: str, attempt: _Attempt) -> None:
        attempt.subject = subject
        attempt.authenticated_by = "ticket"
        if self._signed_in is None:
            return
        browser = await self._signed_in(request)
        if browser != subject:
            raise ConnectError(
                f"Sign in to Portico as {subject} in this browser first (signing in from your MCP client does "
                "that), then open the connect link again.",
                reason="not_signed_in" if browser is None else "signed_in_as_another_user",
                detail="the browser is not signed in as the ticket's subject",
            )
        attempt.authenticated_by = "session"

    async def _browser_subject(self, request: Request, attempt: _Attempt) -> str:
        """Who this browser is signed in to Portico as. Raises: ConnectError: nobody (or no sign-in exists)."""
        subject = await self._signed_in(request) if self._signed_in is not None else None
        if subject is None:
            raise ConnectError(
                "Sign in to Portico in this browser first (signing in from your MCP client does that), then "
                "open this page again.",
                reason="not_signed_in",
                detail="disconnect without a signed-in browser",
            )
        attempt.subject = subject
        attempt.authenticated_by = "session"
        return subject

    def _record(
        self, attempt: _Attempt, outcome: str, server: ServerSettings, reason: str, extra: dict[str, Any] | None = None
    ) -> None:
        attempt.recorded = True
        self.client.record(
            attempt.method,
            outcome,
            attempt.subject,
            server.id,
            reason,
            authenticated_by=attempt.authenticated_by,
            ip=attempt.ip,
            extra=extra,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def handles(self, path: str) -> bool:
        return path.startswith(PATH_PREFIX)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self._dispatch(request)
        await response(scope, receive, send)

    async def _dispatch(self, request: Request) -> Response:
        match = _PATH.fullmatch(request.url.path)
        server = self._servers.get(match.group(1)) if match else None
        if match is None or server is None:
            return _page("Not found", "There is nothing to connect here.", 404)
        page = match.group(2) or ""
        attempt = _Attempt(
            "upstream.disconnect" if page == "/disconnect" else "upstream.connect",
            request.client.host if request.client else None,
        )
        try:
            if page == "/callback" and request.method == "GET":
                return await self._callback(request, server, attempt)
            if page == "" and request.method == "GET":
                return await self._consent(request, server, attempt)
            if page == "" and request.method == "POST":
                return await self._start(request, server, attempt)
            if page == "/disconnect" and request.method == "GET":
                return await self._disconnect_page(request, server, attempt)
            if page == "/disconnect" and request.method == "POST":
                return await self._disconnect(request, server, attempt)
            return _page("Method not allowed", "This page does not take that request.", 405)
        except ConnectError as exc:
            log.info("connect %s refused: %s", server.id, exc.detail)
            self._record(attempt, "denied", server, exc.reason)
            return _page("Cannot connect" if page != "/disconnect" else "Cannot disconnect", exc.public, 400)
        except UpstreamAuthError as exc:
            log.warning("connect %s: upstream authorization failed: %s", server.id, exc.detail)
            self._record(attempt, "error", server, "upstream_auth_failed", {"detail": (exc.detail or "")[:200]})
            text = (
                f"{e_(_title(server))} could not be connected: its authorization server failed or broke a "
                "security rule. Try again later or ask your administrator."
            )
            return _page("Cannot connect", text, 502)
        except PorticoError as exc:
            log.warning("connect %s failed: %s", server.id, exc.detail or exc.public)
            if not attempt.recorded:  # an audit failure itself is not recorded again
                self._record(attempt, "error", server, "portico_failed", {"error": type(exc).__name__})
            return _page("Cannot connect", "Portico could not complete this connection. Try again later.", 503)

    # -------------------------------------------------------------------------------------- consent

    async def _consent(self, request: Request, server: ServerSettings, attempt: _Attempt) -> Response:
        ticket_text = request.query_params.get("ticket", "")
        ticket = self.client.keys.verify(ticket_text, server.id, self.client.clock())
        await self._require_subject(request, ticket.subject, attempt)
        auth = await self.client.auth_for(server)
        scopes = _scopes(auth.scopes, ticket.scopes)
        browser_secret = request.cookies.get(csrf_cookie_name(self.client.secure)) or secrets.token_urlsafe(32)
        csrf = self.client.keys.csrf_token(browser_secret, ticket.nonce)
        e = html.escape
        host = urlsplit(server.url or "").netloc
        body = f"""
<p>You are signed in to Portico as <strong>{e(ticket.subject)}</strong>.</p>
<p>Portico will connect your account at <strong>{e(_title(server))}</strong> (<code>{e(host)}</code>) so that
calls you make through Portico to this server use your own authorization.</p>
<dl>
<dt>Authorization server</dt><dd><code>{e(auth.issuer)}</code></dd>
<dt>Access requested</dt><dd>{e(" ".join(scopes)) if scopes else "(the server's default)"}</dd>
<dt>Return address</dt><dd><code>{e(self.client.redirect_uri(server.id))}</code></dd>
</dl>
<p>If you did not ask for this from your own MCP client, cancel.</p>
<form method="post" action="{e(PATH_PREFIX + server.id)}">
<input type="hidden" name="ticket" value="{e(ticket_text)}">
<input type="hidden" name="csrf" value="{e(csrf)}">
<button type="submit" name="action" value="connect">Connect {e(_title(server))}</button>
<button type="submit" name="action" value="cancel">Cancel</button>
</form>"""
        response = _page(f"Connect {_title(server)}", body, 200, raw=True)
        self._set_csrf_cookie(response, browser_secret)
        return response

    def _set_csrf_cookie(self, response: Response, browser_secret: str) -> None:
        response.set_cookie(
            csrf_cookie_name(self.client.secure),
            browser_secret,
            max_age=int(FLOW_TTL_S),
            path="/",
            secure=self.client.secure,
            httponly=True,
            samesite="lax",
        )

    def _check_csrf(self, request: Request, csrf: str, nonce: str, public: str) -> None:
        browser_secret = request.cookies.get(csrf_cookie_name(self.client.secure))
        if not browser_secret or not secrets.compare_digest(csrf, self.client.keys.csrf_token(browser_secret, nonce)):
            raise ConnectError(public, reason="csrf", detail="CSRF check failed")

    # ---------------------------------------------------------------------------------------- start

    async def _start(self, request: Request, server: ServerSettings, attempt: _Attempt) -> Response:
        form = await _small_form(request)
        ticket_text, csrf, action = (str(form.get(k) or "") for k in ("ticket", "csrf", "action"))
        keys = self.client.keys
        ticket = keys.verify(ticket_text, server.id, self.client.clock())
        await self._require_subject(request, ticket.subject, attempt)
        self._check_csrf(request, csrf, ticket.nonce, "This form has expired: open the connect link again.")
        await self.client.ledger.spend(ticket, self.client.clock())
        if action != "connect":
            self._record(attempt, "denied", server, "cancelled")
            return _page("Cancelled", f"{e_(_title(server))} was not connected. You can close this page.", 200)
        auth = await self.client.auth_for(server)
        client = await self.client.client_for(server, auth)
        scopes = _scopes(auth.scopes, ticket.scopes)
        pending = self.client.new_flow(server.id, ticket.subject, client, scopes)
        location = self.client.authorize_url(auth, client, pending.state, pending.code_verifier, scopes)
        check_url_shape(location, allow_loopback=is_loopback_url(server.url or ""))
        response = RedirectResponse(location, status_code=303, headers=_PAGE_HEADERS)
        response.set_cookie(
            state_cookie_name(pending.state, self.client.secure),
            keys.seal(pending),
            max_age=int(FLOW_TTL_S),
            path="/",
            secure=self.client.secure,
            httponly=True,
            samesite="lax",
        )
        log.info("connect %s: user %r sent to %s", server.id, ticket.subject, auth.issuer)
        return response

    # ------------------------------------------------------------------------------------- callback

    async def _callback(self, request: Request, server: ServerSettings, attempt: _Attempt) -> Response:
        params = request.query_params
        state = params.get("state") or ""
        cookie = state_cookie_name(state, self.client.secure) if state else ""
        sealed = request.cookies.get(cookie) if cookie else None
        if not sealed:
            raise ConnectError(
                "This sign-in does not match one started here: start again from your client.",
                reason="state_unknown",
                detail="no state cookie for this state",
            )
        pending = self.client.keys.open(sealed, server.id, state, self.client.clock())
        await self._require_subject(request, pending.subject, attempt)
        auth = await self.client.auth_for(server)
        iss = params.get("iss")
        if (iss is not None and iss != pending.issuer) or (iss is None and auth.iss_parameter_supported):
            raise ConnectError(
                "The authorization server's answer did not match: start again from your client.",
                reason="iss_mismatch",
                detail="iss mismatch",
            )
        error = params.get("error")
        if error is not None:
            shown = error if error in _KNOWN_AS_ERRORS else "error"
            self._record(attempt, "denied", server, "as_error", {"as_error": shown})
            response = _page("Not connected", f"{e_(_title(server))} answered: {e_(shown)}.", 400)
        else:
            code = params.get("code")
            if not code:
                raise ConnectError(reason="no_code", detail="callback without code")
            tokens = await self.client.complete(server, pending, code)
            log.info("connect %s: user %r connected", server.id, pending.subject)
            self._record(attempt, "ok", server, "connected", {"issuer": tokens.issuer, "scope": tokens.scope})
            response = _page(
                "Connected", f"{e_(_title(server))} is connected. You can return to your client and try again.", 200
            )
        response.delete_cookie(cookie, path="/", secure=self.client.secure, httponly=True, samesite="lax")
        return response

    # ----------------------------------------------------------------------------------- disconnect

    async def _disconnect_page(self, request: Request, server: ServerSettings, attempt: _Attempt) -> Response:
        subject = await self._browser_subject(request, attempt)
        title = e_(_title(server))
        if await self.client.tokens(subject, server.id) is None:
            return _page("Not connected", f"{title} is not connected for {e_(subject)}.", 200)
        browser_secret = request.cookies.get(csrf_cookie_name(self.client.secure)) or secrets.token_urlsafe(32)
        csrf = self.client.keys.csrf_token(browser_secret, disconnect_nonce(server.id, subject))
        body = f"""
<p>You are signed in to Portico as <strong>{e_(subject)}</strong>.</p>
<p>Disconnecting removes the authorization Portico keeps for your account at <strong>{title}</strong>. Your
next call to it through Portico will ask you to connect again. (Revoke Portico's access at {title} itself too
if you no longer trust it.)</p>
<form method="post" action="{e_(PATH_PREFIX + server.id)}/disconnect">
<input type="hidden" name="csrf" value="{e_(csrf)}">
<button type="submit" name="action" value="disconnect">Disconnect {title}</button>
</form>"""
        response = _page(f"Disconnect {_title(server)}", body, 200, raw=True)
        self._set_csrf_cookie(response, browser_secret)
        return response

    async def _disconnect(self, request: Request, server: ServerSettings, attempt: _Attempt) -> Response:
        form = await _small_form(request)
        subject = await self._browser_subject(request, attempt)
        nonce = disconnect_nonce(server.id, subject)
        self._check_csrf(request, str(form.get("csrf") or ""), nonce, "This form has expired: open it again.")
        attempt.recorded = True  # `OAuthClient.disconnect` records it
        had = await self.client.disconnect(
            subject, server.id, by="user", authenticated_by=attempt.authenticated_by, ip=attempt.ip
        )
        log.info("connect %s: user %r disconnected", server.id, subject)
        title = e_(_title(server))
        text = f"{title} is disconnected." if had else f"{title} was not connected."
        return _page("Disconnected", text, 200)


async def _small_form(request: Request) -> Any:
    """The posted form. Raises: ConnectError: larger than `MAX_FORM_BYTES` (by its declared length)."""
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise ConnectError(reason="form_too_large", detail="form too large")
    return await request.form()


def e_(text: str) -> str:
    return html.escape(text)


def _title(server: ServerSettings) -> str:
    return server.title or server.id


def _scopes(base: tuple[str, ...], extra: tuple[str, ...]) -> tuple[str, ...]:
    merged = union_scopes(" ".join(base) or None, " ".join(extra) or None)
    return tuple(merged.split()) if merged else ()


def _page(title: str, body: str, status: int, *, raw: bool = False) -> HTMLResponse:
    """A minimal page; `body` is HTML when `raw` (built with escaping by the caller), else a sentence."""
    content = body if raw else f"<p>{body}</p>"
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>'
        f"{html.escape(title)} · Portico</title><style>body{{font-family:sans-serif;max-width:40em;margin:3em auto}}"
        f"</style></head><body><h1>{html.escape(title)}</h1>{content}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=_PAGE_HEADERS)

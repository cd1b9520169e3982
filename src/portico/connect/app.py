"""`ConnectApp`: the three pages of connecting a user's upstream account, as one ASGI callable.

    GET  /connect/<server>?ticket=T          consent page: which upstream, which account at Portico, which
                                             authorization server, scopes and redirect URI; a form (CSRF token
                                             bound to a browser cookie and to the ticket) — nothing is
                                             redirected before the user confirms (confused-deputy guidance)
    POST /connect/<server>                   spends the ticket (single use), registers Portico at the upstream's
                                             AS if needed, sets the sealed state cookie, 303 to the AS's
                                             authorize endpoint (code, PKCE S256, state, resource, scope)
    GET  /connect/<server>/callback          checks state (the cookie must open for it), `iss` (RFC 9207),
                                             exchanges the code, stores the tokens, "Connected" page

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
from urllib.parse import urlsplit

from mcp.client.auth.utils import union_scopes
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from portico.config import ServerSettings
from portico.errors import PorticoError
from portico.upstream.connect_ticket import ConnectError, csrf_cookie_name, state_cookie_name
from portico.upstream.oauth_client import FLOW_TTL_S, OAuthClient
from portico.upstream.oauth_discovery import UpstreamAuthError, check_url_shape, is_loopback_url

log = logging.getLogger("portico.connect")

PATH_PREFIX = "/connect/"
_PATH = re.compile(r"/connect/([a-z0-9][a-z0-9-]{0,47})(/callback)?/?")
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

    async def _require_subject(self, request: Request, subject: str) -> None:
        if self._signed_in is None:
            return
        if await self._signed_in(request) != subject:
            raise ConnectError(
                f"Sign in to Portico as {subject} in this browser first (signing in from your MCP client does "
                "that), then open the connect link again.",
                detail="the browser is not signed in as the ticket's subject",
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
        callback = match.group(2) is not None
        try:
            if callback and request.method == "GET":
                return await self._callback(request, server)
            if not callback and request.method == "GET":
                return await self._consent(request, server)
            if not callback and request.method == "POST":
                return await self._start(request, server)
            return _page("Method not allowed", "This page does not take that request.", 405)
        except ConnectError as exc:
            log.info("connect %s refused: %s", server.id, exc.detail)
            return _page("Cannot connect", exc.public, 400)
        except UpstreamAuthError as exc:
            log.warning("connect %s: upstream authorization failed: %s", server.id, exc.detail)
            text = (
                f"{e_(_title(server))} could not be connected: its authorization server failed or broke a "
                "security rule. Try again later or ask your administrator."
            )
            return _page("Cannot connect", text, 502)
        except PorticoError as exc:
            log.warning("connect %s failed: %s", server.id, exc.detail or exc.public)
            return _page("Cannot connect", "Portico could not complete this connection. Try again later.", 503)

    # -------------------------------------------------------------------------------------- consent

    async def _consent(self, request: Request, server: ServerSettings) -> Response:
        ticket_text = request.query_params.get("ticket", "")
        ticket = self.client.keys.verify(ticket_text, server.id, self.client.clock())
        await self._require_subject(request, ticket.subject)
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
        response.set_cookie(
            csrf_cookie_name(self.client.secure),
            browser_secret,
            max_age=int(FLOW_TTL_S),
            path="/",
            secure=self.client.secure,
            httponly=True,
            samesite="lax",
        )
        return response

    # ---------------------------------------------------------------------------------------- start

    async def _start(self, request: Request, server: ServerSettings) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            raise ConnectError(detail="form too large")
        form = await request.form()
        ticket_text, csrf, action = (str(form.get(k) or "") for k in ("ticket", "csrf", "action"))
        keys = self.client.keys
        ticket = keys.verify(ticket_text, server.id, self.client.clock())
        await self._require_subject(request, ticket.subject)
        browser_secret = request.cookies.get(csrf_cookie_name(self.client.secure))
        if not browser_secret or not secrets.compare_digest(csrf, keys.csrf_token(browser_secret, ticket.nonce)):
            raise ConnectError("This form has expired: open the connect link again.", detail="CSRF check failed")
        self.client.ledger.spend(ticket, self.client.clock())
        if action != "connect":
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

    async def _callback(self, request: Request, server: ServerSettings) -> Response:
        params = request.query_params
        state = params.get("state") or ""
        cookie = state_cookie_name(state, self.client.secure) if state else ""
        sealed = request.cookies.get(cookie) if cookie else None
        if not sealed:
            raise ConnectError("This sign-in does not match one started here: start again from your client.",
                               detail="no state cookie for this state")  # fmt: skip
        pending = self.client.keys.open(sealed, server.id, state, self.client.clock())
        await self._require_subject(request, pending.subject)
        auth = await self.client.auth_for(server)
        iss = params.get("iss")
        if (iss is not None and iss != pending.issuer) or (iss is None and auth.iss_parameter_supported):
            raise ConnectError("The authorization server's answer did not match: start again from your client.",
                               detail="iss mismatch")  # fmt: skip
        error = params.get("error")
        if error is not None:
            shown = error if error in _KNOWN_AS_ERRORS else "error"
            response = _page("Not connected", f"{e_(_title(server))} answered: {e_(shown)}.", 400)
        else:
            code = params.get("code")
            if not code:
                raise ConnectError(detail="callback without code")
            await self.client.complete(server, pending, code)
            log.info("connect %s: user %r connected", server.id, pending.subject)
            response = _page(
                "Connected", f"{e_(_title(server))} is connected. You can return to your client and try again.", 200
            )
        response.delete_cookie(cookie, path="/", secure=self.client.secure, httponly=True, samesite="lax")
        return response


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

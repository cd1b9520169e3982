"""Self-service account security: a person signed in to the authorization server enrols, or removes, their own
TOTP authenticator. Sits beside `browser` (whose sign-in session it requires); below it `pages` (HTML) and
`portico.identity.users` (the enrolment records).

    GET  /account/security                the TOTP status, and a button to set it up (or a form to remove it)
    POST /account/security/totp/enrol     start (or restart) enrolment → the QR code and the confirm form
    POST /account/security/totp/confirm   password + a code from the new authenticator → active
    POST /account/security/totp/remove    password + a current code from the active authenticator → removed

The sign-in session alone never changes the factors: turning TOTP on takes the password again, and removing it
takes the password and a current code (`UserDirectory.authenticate`, so failures count towards the account's
lockout and a code is never accepted twice). While TOTP is active, enrolment is refused: replacing an
authenticator means removing it first, with a code from it. Each form carries a CSRF token derived from the
session cookie, so it is worthless in another browser. Every action is audited as `account.totp_enrol`,
`account.totp_confirm` or `account.totp_remove`, outcome `ok` or `denied` with a reason.

A session from an external IdP (`idp` other than `local`) has no local account: its second factor is the IdP's.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import segno
from starlette.requests import Request
from starlette.responses import Response

from portico.errors import PorticoError
from portico.identity.authserver import pages
from portico.identity.authserver.context import SESSION_COOKIE, ServerContext
from portico.identity.authserver.model import OAuthError, digest
from portico.identity.authserver.web import client_ip, html, html_error, read_form, redirect
from portico.identity.login import LoginIdentity
from portico.identity.totp import TotpEnrolmentError
from portico.identity.users import AuthFailure, AuthResult, UserNotFoundError

SECURITY_PATH = "/account/security"
_NOTICES = {"totp-on": "Your authenticator app is now active.", "totp-off": "Your authenticator app was removed."}
_NO_ACCOUNT = "There is no local Portico account for this sign-in."
_EXPIRED_FORM = "The form has expired. Reload the page and try again."
_REFUSED = "Wrong password or code, or too many failed attempts: try again later."


def qr_svg(data: str) -> str:
    """`data` as a QR code in inline SVG (no external references, so `default-src 'none'` allows it)."""
    code = segno.make(data, error="m", micro=False)
    return str(code.svg_inline(scale=4, border=4, title="QR code for your authenticator app", omitsize=False))


@dataclass(frozen=True, slots=True)
class _Account:
    """The signed-in person behind a request: their session's identity and the session's CSRF token."""

    identity: LoginIdentity
    csrf: str


class AccountPages:
    """Handlers for /account/security. Each returns a Starlette response (or raises OAuthError, which the
    server turns into an error page)."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------------------------------ handlers

    async def security_page(self, request: Request) -> Response:
        return await self._guarded(self._security_page, request)

    async def enrol(self, request: Request) -> Response:
        return await self._guarded(self._enrol, request)

    async def confirm(self, request: Request) -> Response:
        return await self._guarded(self._confirm, request)

    async def remove(self, request: Request) -> Response:
        return await self._guarded(self._remove, request)

    async def _security_page(self, request: Request) -> Response:
        account = await self._account(request)
        if account is None:
            return html(pages.account_sign_in_needed_page(), 401)
        identity = account.identity
        if identity.idp != "local":
            return html(pages.account_external_page(identity.display_name or identity.username, identity.idp))
        state = await self._totp_state(identity)
        notice = _NOTICES.get(request.query_params.get("done", ""))
        return self._account_page(account, state, notice=notice)

    async def _enrol(self, request: Request) -> Response:
        account, problem = await self._posted(request, "account.totp_enrol")
        if account is None:
            return problem
        identity = account.identity
        if await self._totp_state(identity) == "active":
            self._audit(request, "account.totp_enrol", "denied", identity, "already_active")
            return self._account_page(account, "active", error="Remove your current authenticator app first.")
        uri = await self.ctx.users.begin_totp_enrolment(identity.username)
        self._audit(request, "account.totp_enrol", "ok", identity)
        return html(pages.totp_enrol_page(uri, qr_svg(uri), account.csrf, base=self.ctx.base_path))

    async def _confirm(self, request: Request) -> Response:
        account, form, problem = await self._posted_form(request, "account.totp_confirm")
        if account is None or form is None:
            return problem
        identity = account.identity
        result = await self._reauthenticate(identity, form.get("password", ""), None)
        if result.failure is AuthFailure.MFA_REQUIRED:  # activated meanwhile (another tab): remove it first
            self._audit(request, "account.totp_confirm", "denied", identity, "already_active")
            return self._account_page(account, "active", error="Remove your current authenticator app first.")
        if result.failure is not None:
            self._audit(request, "account.totp_confirm", "denied", identity, result.failure.value)
            return self._enrol_retry(account, _REFUSED)
        try:
            confirmed = await self.ctx.users.confirm_totp(identity.username, form.get("code", "")[:16])
        except TotpEnrolmentError:
            self._audit(request, "account.totp_confirm", "denied", identity, "not_pending")
            state = await self._totp_state(identity)
            return self._account_page(account, state, error="No set-up is in progress. Start again.")
        if not confirmed:
            self._audit(request, "account.totp_confirm", "denied", identity, AuthFailure.BAD_OTP.value)
            return self._enrol_retry(account, "That code was not accepted. Enter the code the app shows now.")
        self._audit(request, "account.totp_confirm", "ok", identity)
        return redirect(f"{self.ctx.path(SECURITY_PATH)}?done=totp-on")

    async def _remove(self, request: Request) -> Response:
        account, form, problem = await self._posted_form(request, "account.totp_remove")
        if account is None or form is None:
            return problem
        identity = account.identity
        code = form.get("code", "").strip()[:16]
        result = await self._reauthenticate(identity, form.get("password", ""), code)
        if result.failure is not None:
            self._audit(request, "account.totp_remove", "denied", identity, result.failure.value)
            state = await self._totp_state(identity)
            return self._account_page(account, state, error=_REFUSED, status=401)
        if "otp" not in result.amr:  # the password held and there is no authenticator: nothing to remove
            self._audit(request, "account.totp_remove", "denied", identity, "not_active")
            return self._account_page(account, "none", error="No authenticator app is set up.")
        await self.ctx.users.remove_totp(identity.username)
        self._audit(request, "account.totp_remove", "ok", identity)
        return redirect(f"{self.ctx.path(SECURITY_PATH)}?done=totp-off")

    # ------------------------------------------------------------------------------------ helpers

    async def _guarded(self, handler: Callable[[Request], Awaitable[Response]], request: Request) -> Response:
        """The one place the user directory's errors become responses: a session whose account is gone (or
        was replaced under the same username) gets a page saying so; anything else is a server error."""
        try:
            return await handler(request)
        except UserNotFoundError:
            return html_error(_NO_ACCOUNT, 404)
        except OAuthError:
            raise
        except PorticoError as exc:
            raise OAuthError("server_error", "Temporarily unavailable", status=500, detail=str(exc)) from exc

    async def _account(self, request: Request) -> _Account | None:
        session_id = request.cookies.get(SESSION_COOKIE, "")
        if not session_id:
            return None
        ctx = self.ctx
        identity = await ctx.grants.session(session_id, ctx.now(), ctx.settings.session_idle_ttl_s)
        if identity is None:
            return None
        return _Account(identity, digest(f"account:{session_id}")[:32])

    async def _posted(self, request: Request, action: str) -> tuple[_Account | None, Response]:
        account, _, problem = await self._posted_form(request, action)
        return account, problem

    async def _posted_form(
        self, request: Request, action: str
    ) -> tuple[_Account | None, dict[str, str] | None, Response]:
        """A form post's signed-in local account and fields, after the session and the CSRF token are checked
        (a refusal is audited as `action`, denied); else the response to send instead."""
        try:
            form = await read_form(request)
        except OAuthError:
            return None, None, html_error("Malformed request.")
        account = await self._account(request)
        if account is None:
            self.ctx.audit_event(action, "denied", ip=client_ip(request), reason="no_session")
            return None, None, html(pages.account_sign_in_needed_page(), 401)
        identity = account.identity
        if not hmac.compare_digest(form.get("csrf", "").encode(), account.csrf.encode()):
            self._audit(request, action, "denied", identity, "bad_csrf")
            return None, None, html_error(_EXPIRED_FORM, 403)
        if identity.idp != "local":
            self._audit(request, action, "denied", identity, "external_idp")
            page = pages.account_external_page(identity.display_name or identity.username, identity.idp)
            return None, None, html(page, 403)
        return account, form, html_error(_EXPIRED_FORM, 403)

    async def _totp_state(self, identity: LoginIdentity) -> str:
        """ "active", "pending" or "none" for the session's local account.

        Raises:
            UserNotFoundError: no such user, or a different one now holds the username.
        """
        user = await self.ctx.users.get_user(identity.username)
        if user.subject != identity.subject:
            raise UserNotFoundError("The session's username now belongs to another subject")
        return user.mfa

    async def _reauthenticate(self, identity: LoginIdentity, password: str, code: str | None) -> AuthResult:
        """Check the session's person again with their password (and a code): a full sign-in check, so
        failures count towards the lockout.

        Raises:
            UserNotFoundError: the password is right for a different subject (the username was reused).
        """
        if not password or len(password) > 1024:
            return AuthResult(failure=AuthFailure.BAD_CREDENTIALS)
        result = await self.ctx.users.authenticate(identity.username, password, code)
        if result.ok and result.subject != identity.subject:
            raise UserNotFoundError("The session's username now belongs to another subject")
        return result

    def _account_page(
        self,
        account: _Account,
        state: str,
        *,
        error: str | None = None,
        notice: str | None = None,
        status: int | None = None,
    ) -> Response:
        identity = account.identity
        content = pages.account_page(
            identity.display_name or identity.username,
            state,
            account.csrf,
            error=error,
            notice=notice,
            base=self.ctx.base_path,
        )
        return html(content, status if status is not None else (409 if error else 200))

    def _enrol_retry(self, account: _Account, error: str) -> Response:
        return html(pages.totp_enrol_page(None, None, account.csrf, error=error, base=self.ctx.base_path), 401)

    def _audit(
        self, request: Request, action: str, outcome: str, identity: LoginIdentity, reason: str | None = None
    ) -> None:
        self.ctx.audit_event(
            action, outcome, subject=identity.subject, ip=client_ip(request), reason=reason, extra={"idp": identity.idp}
        )

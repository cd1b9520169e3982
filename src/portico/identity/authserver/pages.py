"""Server-rendered pages of the authorization server: sign-in, second factor, consent, errors, signed out, and
account security (enrolling an authenticator app, with its QR code as inline SVG: no image is fetched).

No JavaScript and no external assets: one inline stylesheet, allowed by a hash-free `style-src 'unsafe-inline'`
only for styles (scripts are refused outright by the CSP). Every value is HTML-escaped; every form carries the
CSRF token and posts to the server's own origin (`form-action 'self'`, plus the client's redirect URI on the pages
whose form may end with a redirect to it: `security_headers`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape
from urllib.parse import quote, urlsplit

from portico.identity.authserver.model import ExternalLoginLink

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_HOST_PORT = re.compile(r"[A-Za-z0-9._~-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def form_action_source(redirect_uri: str) -> str | None:
    """The CSP source expression matching the OAuth client's redirect URI: its origin (`https://app.example`,
    `http://127.0.0.1:8123`), or its scheme alone for a private-use URI scheme (`com.example.app:`); None when the
    URI cannot be written as a source expression (it then stays blocked)."""
    parts = urlsplit(redirect_uri)
    scheme = parts.scheme.lower()
    if not _SCHEME.fullmatch(scheme):
        return None
    if scheme not in ("http", "https"):
        return f"{scheme}:"
    if "@" in parts.netloc or not _HOST_PORT.fullmatch(parts.netloc):
        return None
    return f"{scheme}://{parts.netloc}"


def security_headers(redirect_uri: str | None = None) -> dict[str, str]:
    """The headers every page is sent with. `redirect_uri`: where a form on the page may end up after the
    server's 303 (the consent page, and the sign-in and code pages, which skip consent when it is remembered).
    Browsers check CSP `form-action` against every redirect a form submission follows (Chromium does), so
    `'self'` alone would stop the browser on its way back to the client."""
    source = form_action_source(redirect_uri) if redirect_uri is not None else None
    form_action = f"'self' {source}" if source is not None else "'self'"
    return {
        "content-security-policy": _CSP.format(form_action=form_action),
        "x-frame-options": "DENY",
        "cache-control": "no-store",
        "pragma": "no-cache",
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
    }


SECURITY_HEADERS = security_headers()

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}"
    "h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]"
    "{width:100%;padding:.4rem;box-sizing:border-box}button{margin:1rem .5rem 0 0;padding:.4rem 1rem}"
    ".error{color:#a00}.muted{color:#666;font-size:.9rem}code{word-break:break-all}h2{font-size:1.1rem}"
    ".qr svg{display:block;margin:1rem 0}"
)


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _hidden(request_id: str, csrf: str) -> str:
    return (
        f'<input type="hidden" name="request" value="{escape(request_id)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
    )


def _error(message: str | None) -> str:
    return f'<p class="error" role="alert">{escape(message)}</p>' if message else ""


def login_page(
    request_id: str,
    csrf: str,
    client_label: str,
    *,
    error: str | None = None,
    username: str = "",
    external: Sequence[ExternalLoginLink] = (),
    base: str = "",
) -> str:
    links = "".join(
        f'<p><a href="{escape(link.start_path)}?request={quote(request_id)}">'
        f"Sign in with {escape(link.display_name)}</a></p>"
        for link in external
    )
    return page(
        "Sign in",
        f'<p class="muted">to continue to {escape(client_label)}</p>{_error(error)}'
        f'<form method="post" action="{escape(base)}/login">{_hidden(request_id, csrf)}'
        f'<label for="username">Username</label>'
        f'<input type="text" id="username" name="username" value="{escape(username)}" autocomplete="username" '
        "required autofocus>"
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" autocomplete="current-password" required>'
        f'<button type="submit">Sign in</button></form>{links}',
    )


def otp_page(request_id: str, csrf: str, *, error: str | None = None, base: str = "") -> str:
    return page(
        "Authentication code",
        f"{_error(error)}<p>Enter the 6-digit code from your authenticator app.</p>"
        f'<form method="post" action="{escape(base)}/login/otp">{_hidden(request_id, csrf)}'
        '<label for="code">Code</label>'
        '<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" '
        'pattern="[0-9]{6}" maxlength="6" required autofocus>'
        '<button type="submit">Verify</button></form>',
    )


def consent_page(
    request_id: str,
    csrf: str,
    *,
    user: str,
    client_name: str | None,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    resource: str,
    base: str = "",
) -> str:
    shown_name = escape(client_name) if client_name else "An application"
    scope_items = "".join(f"<li><code>{escape(s)}</code></li>" for s in scopes)
    return page(
        "Allow access?",
        f"<p><strong>{shown_name}</strong> wants to access <code>{escape(resource)}</code> as "
        f"<strong>{escape(user)}</strong>.</p>"
        f'<p class="muted">Client id: <code>{escape(client_id)}</code><br>'
        f"It will be sent back to: <code>{escape(redirect_uri)}</code></p>"
        f"<p>Requested scopes:</p><ul>{scope_items}</ul>"
        f'<form method="post" action="{escape(base)}/consent">{_hidden(request_id, csrf)}'
        '<button type="submit" name="decision" value="approve">Approve</button>'
        '<button type="submit" name="decision" value="deny">Deny</button></form>',
    )


def error_page(message: str) -> str:
    return page("Cannot continue", f'<p class="error">{escape(message)}</p>')


def signed_out_page() -> str:
    return page("Signed out", "<p>You are signed out of Portico.</p>")


def logout_page(csrf: str, *, base: str = "") -> str:
    return page(
        "Sign out",
        f'<form method="post" action="{escape(base)}/logout"><input type="hidden" name="csrf" value="{escape(csrf)}">'
        '<button type="submit">Sign out</button></form>',
    )


# ------------------------------------------------------------------------------------ account security


def _account_form(action: str, csrf: str, fields: str, button: str, *, base: str) -> str:
    return (
        f'<form method="post" action="{escape(base)}{action}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">{fields}'
        f'<button type="submit">{escape(button)}</button></form>'
    )


_PASSWORD_FIELD = (
    '<label for="password">Password</label>'
    '<input type="password" id="password" name="password" autocomplete="current-password" required>'
)
_CODE_FIELD = (
    '<label for="code">Code</label>'
    '<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" '
    'pattern="[0-9]{6}" maxlength="6" required>'
)


def account_sign_in_needed_page() -> str:
    return page(
        "Account security",
        "<p>You are not signed in to Portico in this browser.</p>"
        "<p>Sign in from your MCP client (connect it to Portico and complete the sign-in in this browser), "
        "then come back to this page.</p>",
    )


def account_external_page(user: str, idp: str) -> str:
    return page(
        "Account security",
        f"<p>You are signed in as <strong>{escape(user)}</strong> through <code>{escape(idp)}</code>.</p>"
        "<p>Your second factor is managed by your identity provider, not by Portico.</p>",
    )


def account_page(
    user: str, totp: str, csrf: str, *, error: str | None = None, notice: str | None = None, base: str = ""
) -> str:
    """`totp`: "active", "pending" or "none" (as `User.mfa`)."""
    top = f"<p>Signed in as <strong>{escape(user)}</strong>.</p>{_error(error)}"
    if notice:
        top += f'<p role="status">{escape(notice)}</p>'
    if totp == "active":
        body = (
            "<h2>Authenticator app</h2><p>Status: <strong>active</strong>. Sign-in asks for a code from it.</p>"
            "<p>To remove it, confirm with your password and a current code.</p>"
            + _account_form(
                "/account/security/totp/remove", csrf, _PASSWORD_FIELD + _CODE_FIELD, "Remove authenticator", base=base
            )
        )
    else:
        body = (
            "<h2>Authenticator app</h2><p>Status: <strong>not set up</strong>. Sign-in asks for your password only.</p>"
            + _account_form("/account/security/totp/enrol", csrf, "", "Set up an authenticator app", base=base)
        )
    return page("Account security", top + body)


def totp_enrol_page(uri: str | None, qr_svg: str | None, csrf: str, *, error: str | None = None, base: str = "") -> str:
    """The enrolment step: the provisioning URI as a QR code (`qr_svg`, trusted inline SVG made here) and as
    text, then the confirmation form. Without `uri` (after a refused code) only the form is shown."""
    shown = ""
    if uri is not None:
        shown = (
            "<p>Scan this code with your authenticator app:</p>"
            f'<div class="qr">{qr_svg or ""}</div>'
            f'<p class="muted">Or enter this address in the app: <code>{escape(uri)}</code></p>'
        )
    fields = _CODE_FIELD.replace("required>", "required autofocus>") + _PASSWORD_FIELD
    again = _account_form("/account/security/totp/enrol", csrf, "", "Start again with a new code", base=base)
    return page(
        "Set up an authenticator app",
        f"{_error(error)}{shown}<p>Then enter the 6-digit code it shows, and your password, to turn it on.</p>"
        + _account_form("/account/security/totp/confirm", csrf, fields, "Turn on", base=base)
        + again,
    )

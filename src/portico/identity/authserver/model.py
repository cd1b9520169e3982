"""Plain values of the authorization server: clients, pending requests, the OAuth error, small pure helpers.

OAuthError                 an RFC 6749 error (`error` code, public description, HTTP status)
└── (raised by the parsers and the grant logic; the endpoint turns it into JSON or a redirect)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from portico.errors import DENIED, PorticoError
from portico.identity.login import LoginIdentity
from portico.netaddr import is_loopback_host

AuthMethod = Literal["none", "client_secret_basic", "client_secret_post"]
AUTH_METHODS: tuple[AuthMethod, ...] = ("none", "client_secret_basic", "client_secret_post")
ClientSource = Literal["config", "dcr", "cimd"]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1"})
PKCE_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 §4.1
PKCE_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url(SHA-256), no padding
# Private-use URI schemes (RFC 8252 §7.1) are reverse domain names, so they hold a dot; `javascript:`, `data:`,
# `file:`, `vbscript:`, `blob:` … do not.
_PRIVATE_SCHEME = re.compile(r"[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+")


class OAuthError(PorticoError):
    """An OAuth error response (RFC 6749 §4.1.2.1, §5.2; RFC 7591 §3.2.2; RFC 8707 `invalid_target`).

    `error` is the wire code; `public` the `error_description` (never echoes client input); `detail` is for
    the audit log and the process log only.
    """

    code = DENIED

    def __init__(self, error: str, public: str, *, status: int = 400, detail: str | None = None) -> None:
        super().__init__(public, detail=detail)
        self.error = error
        self.status = status


@dataclass(frozen=True, slots=True)
class Client:
    """A client as the server knows it, wherever it was registered."""

    client_id: str
    source: ClientSource
    name: str | None = None
    redirect_uris: tuple[str, ...] = ()
    grant_types: frozenset[str] = frozenset({"authorization_code"})
    auth_method: AuthMethod = "none"
    secret_hash: str | None = None
    scopes: frozenset[str] | None = None  # None: any the server offers
    resources: frozenset[str] | None = None  # None: any protected resource
    subject: str | None = None  # client_credentials
    groups: frozenset[str] = frozenset()

    @property
    def confidential(self) -> bool:
        return self.secret_hash is not None

    def secret_matches(self, secret: str) -> bool:
        """Constant-time check of a presented secret against the stored hash."""
        return self.secret_hash is not None and hmac.compare_digest(self.secret_hash, digest(secret))

    def redirect_uri_allowed(self, uri: str) -> bool:
        return any(redirect_uri_matches(registered, uri) for registered in self.redirect_uris)


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """An authorization request that passed validation, waiting for the browser to sign in and consent."""

    id: str
    browser_hash: str
    csrf: str
    client_id: str
    client_name: str | None
    redirect_uri: str
    scope: tuple[str, ...]
    resource: str
    state: str | None
    code_challenge: str
    step: str = "login"  # login → otp → consent
    username: str | None = None  # set once the password held, for the otp step
    identity: LoginIdentity | None = None  # set once signed in, for the consent step
    sealed_password: bytes | None = None  # otp step: the password, sealed with a key from the browser cookie


@dataclass(frozen=True, slots=True)
class ExternalLoginLink:
    """A button on the login page that starts signing in at an external IdP (the SSO module's start path).

    The page links to `start_path?request=<pending request id>`; the SSO module later calls
    `AuthServer.complete_external_login` with that id.
    """

    id: str
    display_name: str
    start_path: str


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """A successful token response (RFC 6749 §5.1)."""

    access_token: str
    expires_in: int
    scope: tuple[str, ...]
    refresh_token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": " ".join(self.scope),
        }
        if self.refresh_token is not None:
            out["refresh_token"] = self.refresh_token
        return out


def digest(secret: str) -> str:
    """SHA-256 (hex) of a high-entropy secret: what the database keeps instead of the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def timestamp(value: datetime) -> float:
    """Unix seconds of a stored time (SQLite hands back naive UTC datetimes)."""
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()


def pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) == challenge, compared in constant time."""
    if not PKCE_VERIFIER.fullmatch(verifier):
        return False
    computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return hmac.compare_digest(computed, challenge)


def redirect_uri_matches(registered: str, presented: str) -> bool:
    """Exact string comparison, except that a loopback IP redirect URI may use any port (RFC 8252 §7.3)."""
    if hmac.compare_digest(registered.encode(), presented.encode()):
        return True
    reg, pre = urlsplit(registered), urlsplit(presented)
    if reg.scheme != "http" or pre.scheme != "http" or reg.username or pre.username:
        return False
    try:
        reg_host, pre_host = reg.hostname, pre.hostname
        pre.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        return False
    if reg_host not in LOOPBACK_HOSTS or reg_host != pre_host:
        return False
    return (reg.path, reg.query, reg.fragment) == (pre.path, pre.query, pre.fragment) and _netloc_host(
        reg.netloc
    ) == _netloc_host(pre.netloc)


def _netloc_host(netloc: str) -> str:
    """The host part of a netloc, as written (brackets kept), without the port."""
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1]
    return netloc.rsplit(":", 1)[0]


def redirect_uri_problem(uri: object, native_schemes: Collection[str] = ()) -> str | None:
    """Why `uri` cannot be registered as a redirect URI, or None.

    https anywhere; http only on a loopback host (RFC 8252 §7.3); a private-use scheme (reverse domain name,
    RFC 8252 §7.1) or one of `native_schemes`; never a fragment, user info, or javascript:, data:, file:….
    """
    if not isinstance(uri, str) or not uri or len(uri) > 2000:
        return "not a string of at most 2000 characters"
    if any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in uri):
        return "contains spaces or control characters"
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if "#" in uri:
        return "has a fragment"
    if scheme == "https":
        if not parts.hostname or parts.username is not None or parts.password is not None:
            return "https redirect URIs need a host and no user info"
        return None
    if scheme == "http":
        if not is_loopback_host(parts.hostname) or parts.username is not None:
            return "http is allowed only for loopback hosts"
        return None
    if _PRIVATE_SCHEME.fullmatch(scheme) or scheme in native_schemes:
        return None
    return "scheme not allowed"

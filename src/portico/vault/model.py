"""The vault's plain values: its errors, the shape of a secret's address, and what a listing shows.

A secret is addressed by `(scope, name)`:

* scope `server:<server id>`: a static credential of one upstream server (an API key, a bearer token);
* scope `user:<subject>:server:<server id>`: one user's credential toward one upstream (per-user upstream
  OAuth tokens, a later issue). The subject may itself contain `:`; the scope is split at its last
  `:server:`.

Names are short identifiers (`[A-Za-z0-9][A-Za-z0-9._-]*`, at most 128 characters). Values are never part of
any of these objects: a value exists only as the `str` that `Vault.get` returns and the `str` given to
`Vault.put`.

The errors, one subtree under `PorticoError`:

    VaultError                        the vault cannot do what was asked
    ├── SecretNotFoundError             no secret at (scope, name)
    ├── SecretNameError                 a scope, name or `${vault:…}` reference of the wrong shape (also a
    │                                   ValueError, so a pydantic validator turns it into a config error)
    ├── VaultKeyError                   no usable key: unset, malformed, or a row's key is not configured
    └── SecretIntegrityError            a ciphertext failed authentication: tampered, moved, or wrong key

`public` names the scope and name, never a value; `detail` (process log only) never holds a value either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from portico.errors import PorticoError

MAX_SCOPE_CHARS = 512
MAX_NAME_CHARS = 128
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# The shape of `config.SERVER_ID`, repeated (not imported): `portico.config` imports this package's settings.
_SERVER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SHOWN_CHARS = 80


class VaultError(PorticoError):
    """The credential vault cannot do what was asked. `public` never holds a secret value."""

    default_public = "Credential vault error"


class SecretNotFoundError(VaultError):
    """No secret is stored at (scope, name)."""

    default_public = "No such secret"

    def __init__(self, scope: str, name: str) -> None:
        super().__init__(f"No secret {shown(name)} in scope {shown(scope)}")
        self.scope = scope
        self.name = name


class SecretNameError(VaultError, ValueError):
    """A scope, name or `${vault:…}` reference does not have the documented shape."""

    default_public = "Invalid secret scope or name"


class VaultKeyError(VaultError):
    """No usable vault key: the configured one is missing or malformed, or a row was sealed with a key that is
    neither the current one nor a previous one."""

    default_public = "Credential vault key unavailable"


class SecretIntegrityError(VaultError):
    """A stored ciphertext failed authentication: altered, copied from another (scope, name), or sealed with a
    different key that happens to share the recorded key id (never expected)."""

    default_public = "Stored secret failed its integrity check"


@dataclass(frozen=True, slots=True)
class SecretEntry:
    """What `Vault.list` shows of one secret: where it is and which key sealed it; never its value."""

    scope: str
    name: str
    key_id: str
    updated_at: datetime


_CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,64}")  # identity.server.clients[].client_id
_PROVIDER_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # identity.sso[].id


def server_scope(server_id: str) -> str:
    """The scope of one upstream server's static credentials.

    Raises:
        SecretNameError: `server_id` is not a valid server id.
    """
    return check_scope(f"server:{server_id}")


def user_server_scope(subject: str, server_id: str) -> str:
    """The scope of one user's credentials toward one upstream server (per-user upstream OAuth).

    Raises:
        SecretNameError: empty subject, control characters, an invalid server id, or too long.
    """
    return check_scope(f"user:{subject}:server:{server_id}")


def check_scope(scope: str) -> str:
    """Return `scope` if it is `server:<id>`, `user:<subject>:server:<id>`, `oauth-client:<client id>` (a
    configured OAuth client's secret) or `sso:<provider id>` (an SSO provider's client secret).

    Raises:
        SecretNameError: any other shape.
    """
    ok = len(scope) <= MAX_SCOPE_CHARS and not _CONTROL.search(scope)
    if ok and scope.startswith("server:"):
        ok = _SERVER_ID.fullmatch(scope.removeprefix("server:")) is not None
    elif ok and scope.startswith("user:"):
        subject, sep, server_id = scope.removeprefix("user:").rpartition(":server:")
        ok = bool(sep and subject) and _SERVER_ID.fullmatch(server_id) is not None
    elif ok and scope.startswith("oauth-client:"):
        ok = _CLIENT_ID.fullmatch(scope.removeprefix("oauth-client:")) is not None
    elif ok and scope.startswith("sso:"):
        ok = _PROVIDER_ID.fullmatch(scope.removeprefix("sso:")) is not None
    else:
        ok = False
    if not ok:
        raise SecretNameError(
            f"Invalid secret scope {shown(scope)}: expected server:<server id>, user:<subject>:server:<server id>, "
            "oauth-client:<client id> or sso:<provider id>"
        )
    return scope


def check_name(name: str) -> str:
    """Return `name` if it is a valid secret name.

    Raises:
        SecretNameError: empty, too long, or characters other than letters, digits, `.`, `_`, `-`.
    """
    if NAME.fullmatch(name) is None:
        raise SecretNameError(
            f"Invalid secret name {shown(name)}: use letters, digits, '.', '_' or '-' (at most {MAX_NAME_CHARS})"
        )
    return name


def shown(text: str) -> str:
    """`text` quoted for a message: control characters replaced, long text cut (an address, never a value)."""
    text = _CONTROL.sub("\ufffd", text)
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…")

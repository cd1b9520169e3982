"""The sign-in state that crosses the browser round trip to the IdP, sealed so the browser can carry but not read
or change it. Pure functions over a key and a clock reading; no I/O.

Why a cookie and not a server-side table: replicas behind a load balancer need no shared store, and the IdP's
callback may land on any of them. What the browser holds:

    cookie name  = "portico_sso_" || hex(SHA-256(state))[:24]       (one cookie per sign-in in flight)
    cookie value = base64url( nonce12 || AES-256-GCM(K, nonce12, json(payload), aad) )
    aad          = b"portico-sso-state/1" || 0x00 || provider id || 0x00 || state
    K            = HKDF-SHA256(state_key, info=b"portico-sso-state/1")

The payload holds the OIDC nonce, the PKCE verifier, the pending authorization request id and an expiry. The
`state` query parameter the IdP sends back selects the cookie and is part of the associated data, so a cookie
opens only for the sign-in and the provider it was made for; a changed state, a changed cookie, a cookie made
with another key or for another provider all fail the same way. Replicas must share `state_key`.

The cookie is HttpOnly, SameSite=Lax (the IdP's redirect back is a top-level GET, which Lax allows), Secure when
Portico's public URL is https, scoped to the SSO path, and cleared when the callback is handled. Replay of one
callback is refused by the IdP (a code is single-use) and, within a process, by `SsoLogin`'s used-state set.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from portico.identity.sso.errors import SsoError, SsoFailure

COOKIE_PREFIX = "portico_sso_"
_INFO = b"portico-sso-state/1"
_NONCE_BYTES = 12
MIN_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """What Portico remembers about one sign-in between the redirect to the IdP and the callback."""

    provider: str
    state: str
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    request_id: str
    expires_at: float


def cookie_name(state: str) -> str:
    """The cookie that carries the sign-in started with `state`."""
    return COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:24]


class StateSealer:
    """Seals and opens `PendingSignIn`s with one key."""

    def __init__(self, state_key: bytes) -> None:
        """Raises:
        ValueError: the key is shorter than 32 bytes.
        """
        if len(state_key) < MIN_KEY_BYTES:
            raise ValueError(f"the SSO state key must be at least {MIN_KEY_BYTES} bytes")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(state_key)
        self._aead = AESGCM(derived)

    def seal(self, pending: PendingSignIn) -> str:
        payload = orjson.dumps(
            {"n": pending.nonce, "v": pending.code_verifier, "r": pending.request_id, "e": pending.expires_at}
        )
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, payload, _aad(pending.provider, pending.state))
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def open(self, value: str, provider: str, state: str, now: float) -> PendingSignIn:
        """The sign-in sealed in `value` for `provider` and `state`, if still valid at `now`.

        Raises:
            SsoError: `STATE_INVALID` (does not open) or `STATE_EXPIRED`.
        """
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            if len(raw) <= _NONCE_BYTES:
                raise ValueError("too short")
            payload = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(provider, state))
            data = orjson.loads(payload)
            pending = PendingSignIn(provider, state, str(data["n"]), str(data["v"]), str(data["r"]), float(data["e"]))
        except (InvalidTag, ValueError, binascii.Error, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            detail = f"state cookie does not open: {type(exc).__name__}"
            raise SsoError(SsoFailure.STATE_INVALID, detail=detail) from None
        if now >= pending.expires_at:
            raise SsoError(SsoFailure.STATE_EXPIRED)
        return pending


def _aad(provider: str, state: str) -> bytes:
    return b"\x00".join((_INFO, provider.encode(), state.encode()))

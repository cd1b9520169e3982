"""Access tokens of the embedded authorization server: JWTs per RFC 9068, bound to one resource per RFC 8707.

    TokenIssuer.issue(subject, audience, ...)      -> "eyJ…"  (ES256, typ at+jwt, kid of the current key)
    TokenVerifier.verify(token, expected_audience) -> VerifiedToken, or InvalidTokenError(reason)

`verify` trusts nothing it has not checked, in this order (cheapest first; no claim is read before the
signature holds):

    1. length (capped before any parsing), ASCII, three base64url segments, header a JSON object
    2. `alg` in the allowlist (so `none`, HS256 with a public key as the secret, … never reach a key)
    3. no `crit` or `b64`; `typ` at+jwt; `kid` names a key that verifies now (the key is never taken from
       the token: `jwk`, `jku`, `x5u`, `x5c` are ignored)
    4. the signature, with that key, under that algorithm
    5. claims: required ones present and well typed; `iss`; `exp` (no leeway); `nbf`/`iat` (leeway); `aud`
    6. the revocation hook, by `jti`

Every rejection is one `InvalidTokenError` whose `reason` (a `TokenRejection`) is its public, stable code; the
token and anything read from it are never echoed. A successful verification is cached by token string (LRU,
bounded, dropped at `exp`), so the hot path checks a token's signature once; a cache hit still checks the
audience, the clock, that the signing key still verifies, and revocation. The cache is not shared between
threads: each event loop keeps its own verifier.

Imports `portico.errors`, `portico.identity.keys` and `.settings`, and joserfc.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    InvalidKeyCurveError,
    InvalidKeyTypeError,
    JoseError,
    UnsupportedAlgorithmError,
    UnsupportedKeyAlgorithmError,
    UnsupportedKeyUseError,
)

from portico.errors import DENIED, PorticoError
from portico.identity.keys import Clock, JwksKeys, KeyRing, VerificationKeys
from portico.identity.settings import SIGNING_ALG, TokenSettings

TOKEN_TYPE = "at+jwt"
ACCEPTED_TYPES = frozenset({TOKEN_TYPE, f"application/{TOKEN_TYPE}"})  # compared case-insensitively (RFC 7515)
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")  # RFC 9068 §2.2
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")  # empty signature: alg=none
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3
_KEY_MISFITS = (InvalidKeyTypeError, InvalidKeyCurveError, UnsupportedKeyAlgorithmError, UnsupportedKeyUseError)


class TokenRejection(enum.StrEnum):
    """Why a token was refused: public, short, stable; tests and the audit log key on it."""

    MALFORMED = "malformed"
    TOO_LARGE = "too large"
    ALGORITHM = "algorithm not allowed"
    TYPE = "wrong token type"
    UNKNOWN_KEY = "unknown signing key"
    SIGNATURE = "bad signature"
    MISSING_CLAIMS = "missing claims"
    ISSUER = "wrong issuer"
    EXPIRED = "expired"
    NOT_YET_VALID = "not yet valid"
    AUDIENCE = "wrong audience"
    REVOKED = "revoked"


class InvalidTokenError(PorticoError):
    """An access token was refused. The resource server answers 401 with `error="invalid_token"`.

    `public` is "Invalid access token: <reason>"; `detail` (private) says a little more, never the token.
    """

    code = DENIED
    default_public = "Invalid access token"
    http_status = 401
    oauth_error = "invalid_token"

    def __init__(self, reason: TokenRejection, *, detail: str | None = None) -> None:
        self.reason = reason
        super().__init__(f"{self.default_public}: {reason.value}", detail=detail)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a verified access token says. `audience` is the resource it was verified for."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    groups: frozenset[str]
    amr: tuple[str, ...]  # how the user authenticated (RFC 8176), in the issuer's order
    audience: str
    expires_at: float
    jti: str


class TokenIssuer:
    """Mints access tokens signed with the key ring's current key."""

    def __init__(self, keyring: KeyRing, settings: TokenSettings, clock: Clock = time.time) -> None:
        self._keyring = keyring
        self._settings = settings
        self._clock = clock

    def issue(
        self,
        subject: str,
        audience: str,
        *,
        scopes: Iterable[str],
        client_id: str,
        groups: Iterable[str] = (),
        amr: Sequence[str] = (),
        ttl_s: int | None = None,
    ) -> str:
        """A signed RFC 9068 access token for `subject`, valid only at the resource `audience` (RFC 8707).

        `amr` says how the user authenticated (e.g. ["pwd", "otp"]). `ttl_s` defaults to `access_ttl_s`.
        Empty `scopes`, `groups` and `amr` are left out of the token.

        Raises:
            ValueError: an empty subject or client id, an audience that is not an absolute URI without a
                fragment, a scope that is not an RFC 6749 scope token, a ttl outside 1…`max_access_ttl_s`, or a
                token that would exceed `max_token_bytes` (too many groups).
        """
        ttl = self._settings.access_ttl_s if ttl_s is None else ttl_s
        _check_issue_arguments(subject, audience, client_id, ttl, self._settings.max_access_ttl_s)
        scope_list = list(dict.fromkeys(scopes))
        bad = [s for s in scope_list if not _SCOPE_TOKEN.fullmatch(s)]
        if bad:
            raise ValueError(f"not an RFC 6749 scope token: {bad[0]!r}")
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self._settings.issuer,
            "sub": subject,
            "aud": audience,
            "exp": now + ttl,
            "iat": now,
            "nbf": now,
            "jti": secrets.token_urlsafe(16),
            "client_id": client_id,
        }
        if scope_list:
            claims["scope"] = " ".join(scope_list)
        if group_list := list(dict.fromkeys(groups)):
            claims["groups"] = group_list
        if amr_list := list(dict.fromkeys(amr)):
            claims["amr"] = amr_list
        current = self._keyring.current
        header = {"alg": SIGNING_ALG, "typ": TOKEN_TYPE, "kid": current.kid}
        token = jwt.encode(header, claims, current.key, algorithms=[SIGNING_ALG])
        if len(token) > self._settings.max_token_bytes:
            raise ValueError(f"the token would be {len(token)} bytes, over max_token_bytes")
        return token


@dataclass(frozen=True, slots=True)
class _Entry:
    verified: VerifiedToken
    audiences: frozenset[str]
    kid: str


class TokenVerifier:
    """Checks access tokens for one issuer, caching the ones that pass.

    `keys` is a `KeyRing` (Portico's own), any `VerificationKeys`, or a JWKS document. `is_revoked(jti)` is
    asked on every call, cached or not; it should be cheap (an in-memory set fed by the revocation endpoint).
    """

    def __init__(
        self,
        keys: VerificationKeys | Mapping[str, Any],
        settings: TokenSettings,
        clock: Clock = time.time,
        *,
        is_revoked: Callable[[str], bool] | None = None,
    ) -> None:
        """Raises:
        SigningKeyError: `keys` is a JWKS document that is not a valid key set.
        """
        self._keys: VerificationKeys = JwksKeys(keys) if isinstance(keys, Mapping) else keys
        self._settings = settings
        self._clock = clock
        self._is_revoked = is_revoked or _never_revoked
        self._algorithms = frozenset(settings.allowed_algs)
        # Unknown header members are ignored (RFC 7515 §4); the key is never taken from jwk/jku/x5u/x5c.
        self._registry = jws.JWSRegistry(algorithms=list(settings.allowed_algs), strict_check_header=False)
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._max_entries = settings.verify_cache_entries
        self.hits = 0
        self.misses = 0

    @property
    def cached(self) -> int:
        """How many verified tokens are remembered."""
        return len(self._cache)

    def verify(self, token: str, expected_audience: str) -> VerifiedToken:
        """The claims of `token` if it is a valid access token for the resource `expected_audience`.

        Raises:
            InvalidTokenError: for every rejection, with its `reason`.
        """
        if not isinstance(token, str):  # the wire hands us str; anything else is refused, not hashed
            raise InvalidTokenError(TokenRejection.MALFORMED, detail="not a string")
        now = self._clock()
        entry = self._cache.get(token) if self._max_entries else None
        if entry is not None:
            return self._recheck(token, entry, expected_audience, now)
        self.misses += 1
        entry = self._verify(token, now)
        verified = self._accept(entry, expected_audience)
        if self._max_entries:
            self._cache[token] = entry
            if len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return verified

    def _recheck(self, token: str, entry: _Entry, expected_audience: str, now: float) -> VerifiedToken:
        """A cache hit: what can change since the entry was made (time, keys, revocation) is checked again."""
        if now >= entry.verified.expires_at:
            self._cache.pop(token, None)
            raise InvalidTokenError(TokenRejection.EXPIRED, detail="cached token reached exp")
        if self._keys.verification_key(entry.kid) is None:
            self._cache.pop(token, None)
            raise InvalidTokenError(TokenRejection.UNKNOWN_KEY, detail="the signing key no longer verifies")
        verified = self._accept(entry, expected_audience)
        self._cache.move_to_end(token)
        self.hits += 1
        return verified

    def _accept(self, entry: _Entry, expected_audience: str) -> VerifiedToken:
        if expected_audience not in entry.audiences:
            raise InvalidTokenError(TokenRejection.AUDIENCE, detail="token issued for another resource")
        verified = entry.verified
        if self._is_revoked(verified.jti):
            raise InvalidTokenError(TokenRejection.REVOKED, detail="jti is revoked")
        return verified if verified.audience == expected_audience else replace(verified, audience=expected_audience)

    def _verify(self, token: str, now: float) -> _Entry:
        """Steps 1 to 5 of the module docstring, except the audience; the result is independent of the caller."""
        if len(token) > self._settings.max_token_bytes:
            raise InvalidTokenError(TokenRejection.TOO_LARGE, detail=f"{len(token)} characters")
        if not _COMPACT_JWS.fullmatch(token):
            raise InvalidTokenError(TokenRejection.MALFORMED, detail="not a compact JWS")
        header = _json_object(token.partition(".")[0], "header")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidTokenError(TokenRejection.ALGORITHM, detail="alg missing or not in allowed_algs")
        if "crit" in header or "b64" in header:  # extensions Portico never uses: refuse rather than half-honour
            raise InvalidTokenError(TokenRejection.MALFORMED, detail="crit or b64 header")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES:
            raise InvalidTokenError(TokenRejection.TYPE, detail="typ is not at+jwt")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError(TokenRejection.UNKNOWN_KEY, detail="no kid")
        key = self._keys.verification_key(kid)
        if key is None:
            raise InvalidTokenError(TokenRejection.UNKNOWN_KEY, detail="kid missing or not a verifying key")
        try:
            signed = jws.deserialize_compact(token, key, registry=self._registry)
        except BadSignatureError:
            raise InvalidTokenError(TokenRejection.SIGNATURE) from None
        except (*_KEY_MISFITS, UnsupportedAlgorithmError) as exc:
            raise InvalidTokenError(TokenRejection.ALGORITHM, detail=f"alg does not fit the key: {exc.error}") from None
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidTokenError(TokenRejection.MALFORMED, detail=f"JWS rejected: {type(exc).__name__}") from None
        claims = _json_object(signed.payload or b"", "payload")
        entry = _entry(claims, kid)
        if claims["iss"] != self._settings.issuer:
            raise InvalidTokenError(TokenRejection.ISSUER)
        self._check_times(claims, now)
        return entry

    def _check_times(self, claims: Mapping[str, Any], now: float) -> None:
        if now >= claims["exp"]:
            raise InvalidTokenError(TokenRejection.EXPIRED)
        latest = now + self._settings.leeway_s
        if claims.get("nbf", 0) > latest:
            raise InvalidTokenError(TokenRejection.NOT_YET_VALID, detail="nbf in the future")
        if claims["iat"] > latest:
            raise InvalidTokenError(TokenRejection.NOT_YET_VALID, detail="iat in the future")


def _never_revoked(jti: str) -> bool:
    return False


def _check_issue_arguments(subject: str, audience: str, client_id: str, ttl: int, max_ttl: int) -> None:
    if not subject or not client_id:
        raise ValueError("subject and client_id must not be empty")
    parts = urlsplit(audience)
    if not parts.scheme or not parts.netloc or "#" in audience:
        raise ValueError("audience must be an absolute URI without a fragment (RFC 8707)")
    if not 0 < ttl <= max_ttl:
        raise ValueError(f"ttl_s must be 1…{max_ttl} (max_access_ttl_s)")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # Python's json accepts NaN and Infinity; a NaN `exp` never expires


def _json_object(segment: str | bytes, part: str) -> dict[str, Any]:
    """A base64url segment (str) or raw bytes, decoded as a JSON object."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)) if isinstance(segment, str) else segment
        value = json.loads(raw, parse_constant=_reject_constant)
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidTokenError(TokenRejection.MALFORMED, detail=f"{part} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise InvalidTokenError(TokenRejection.MALFORMED, detail=f"{part} is not a JSON object")
    return value


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _entry(claims: Mapping[str, Any], kid: str) -> _Entry:
    """Required claims present and every claim Portico reads well typed; then the parts as a cache entry."""
    if any(claims.get(name) in (None, "", []) for name in REQUIRED_CLAIMS):
        raise InvalidTokenError(TokenRejection.MISSING_CLAIMS)
    aud = claims["aud"]
    audiences = frozenset([aud] if isinstance(aud, str) else aud if _strings(aud) else ())
    strings_ok = all(isinstance(claims[name], str) for name in ("iss", "sub", "jti", "client_id"))
    times_ok = all(_is_time(claims[name]) for name in ("exp", "iat")) and _is_time(claims.get("nbf", 0))
    optional_ok = isinstance(claims.get("scope", ""), str) and all(
        _strings(claims.get(name, [])) for name in ("groups", "amr")
    )
    if not (audiences and strings_ok and times_ok and optional_ok):
        raise InvalidTokenError(TokenRejection.MALFORMED, detail="a claim has the wrong type")
    verified = VerifiedToken(
        subject=claims["sub"],
        client_id=claims["client_id"],
        scopes=frozenset(s for s in claims.get("scope", "").split(" ") if s),
        groups=frozenset(claims.get("groups", ())),
        amr=tuple(claims.get("amr", ())),
        audience=next(iter(audiences)) if len(audiences) == 1 else "",
        expires_at=float(claims["exp"]),
        jti=claims["jti"],
    )
    return _Entry(verified, audiences, kid)

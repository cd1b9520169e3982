"""ID token checks (OIDC Core §3.1.3.7), pure: the caller fetches the key named by the header.

In order: compact JWS shape and size; `alg` one of the IdP's advertised asymmetric algorithms; the signature
with the IdP's key for `kid` (never a key carried in the token: `jwk`, `jku`, `x5u`, `x5c` are ignored); `iss`
equal to the issuer; `aud` containing the client id; with several audiences `azp` required, and `azp` when
present equal to the client id; `exp` in the future and `iat`/`nbf` not in the future (both with `skew_s`);
`nonce` equal to the one sent; `acr` one of `acr_values` when those are required. Each failure has its own
`SsoFailure`. joserfc errors become `SsoError`s here and only here.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import Key

from portico.identity.sso.errors import SsoError, SsoFailure

MAX_ID_TOKEN_CHARS = 16_384
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Expected:
    """What a valid ID token for this sign-in must say."""

    issuer: str
    client_id: str
    nonce: str
    algorithms: Collection[str]
    skew_s: int = 60
    acr_values: Sequence[str] = ()


def read_header(token: str, algorithms: Collection[str]) -> tuple[str, str | None]:
    """`(alg, kid)` of an ID token, once its shape and algorithm are acceptable.

    Raises:
        SsoError: `ID_TOKEN_MALFORMED` or `ID_TOKEN_ALGORITHM`.
    """
    if not isinstance(token, str) or len(token) > MAX_ID_TOKEN_CHARS or not _COMPACT_JWS.fullmatch(token):
        raise SsoError(SsoFailure.ID_TOKEN_MALFORMED, detail="not a compact JWS of acceptable size")
    header = _json_segment(token.partition(".")[0])
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in algorithms:
        raise SsoError(SsoFailure.ID_TOKEN_ALGORITHM, detail=f"alg {alg!r} not accepted")
    if "crit" in header or "b64" in header:
        raise SsoError(SsoFailure.ID_TOKEN_MALFORMED, detail="crit or b64 header")
    if kid is not None and not isinstance(kid, str):
        raise SsoError(SsoFailure.ID_TOKEN_MALFORMED, detail="kid is not a string")
    return alg, kid


def check_id_token(token: str, key: Key, expected: Expected, now: float) -> dict[str, Any]:
    """The claims of `token` if it is a valid ID token for `expected`, signed with `key`.

    Raises:
        SsoError: an `ID_TOKEN_*` reason.
    """
    alg, _ = read_header(token, expected.algorithms)
    registry = jws.JWSRegistry(algorithms=[alg], strict_check_header=False)
    try:
        signed = jws.deserialize_compact(token, key, algorithms=[alg], registry=registry)
    except BadSignatureError:
        raise SsoError(SsoFailure.ID_TOKEN_SIGNATURE) from None
    except (JoseError, ValueError, TypeError) as exc:
        # e.g. an RS256 header with an EC key: the key cannot make this signature
        raise SsoError(SsoFailure.ID_TOKEN_ALGORITHM, detail=f"JWS rejected: {type(exc).__name__}") from None
    claims = _json_object(signed.payload or b"")
    _check_claims(claims, expected, now)
    return claims


def _check_claims(claims: dict[str, Any], expected: Expected, now: float) -> None:
    if claims.get("iss") != expected.issuer:
        raise SsoError(SsoFailure.ID_TOKEN_ISSUER)
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if expected.client_id not in audiences:
        raise SsoError(SsoFailure.ID_TOKEN_AUDIENCE)
    azp = claims.get("azp")
    if (azp is not None or len(audiences) > 1) and azp != expected.client_id:
        raise SsoError(SsoFailure.ID_TOKEN_AZP)
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf", 0)
    if not (_is_time(exp) and _is_time(iat) and _is_time(nbf)):
        raise SsoError(SsoFailure.ID_TOKEN_MALFORMED, detail="exp, iat or nbf missing or not a number")
    if now >= exp + expected.skew_s:
        raise SsoError(SsoFailure.ID_TOKEN_EXPIRED)
    if iat > now + expected.skew_s or nbf > now + expected.skew_s:
        raise SsoError(SsoFailure.ID_TOKEN_NOT_YET_VALID)
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), expected.nonce.encode()):
        raise SsoError(SsoFailure.ID_TOKEN_NONCE)
    if expected.acr_values and claims.get("acr") not in expected.acr_values:
        raise SsoError(SsoFailure.ID_TOKEN_ACR, detail=f"acr {claims.get('acr')!r} not required value")


def _is_time(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _json_segment(segment: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise SsoError(SsoFailure.ID_TOKEN_MALFORMED, detail="segment is not base64url") from None
    return _json_object(raw)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # a NaN `exp` would never expire


def _json_object(raw: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise SsoError(SsoFailure.ID_TOKEN_MALFORMED, detail="not JSON") from None
    if not isinstance(value, dict):
        raise SsoError(SsoFailure.ID_TOKEN_MALFORMED, detail="not a JSON object")
    return value

"""ID token checks, pure: every way a token can be wrong has its own reason."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from typing import Any

import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from portico.identity.sso.errors import SsoError, SsoFailure
from portico.identity.sso.idtoken import Expected, check_id_token, read_header

RSA = RSAKey.generate_key(2048, parameters={"kid": "r1"})
EC = ECKey.generate_key("P-256", parameters={"kid": "e1"})
NOW = time.time()
EXPECTED = Expected(issuer="https://idp.example.com", client_id="portico", nonce="n-1",
                    algorithms=frozenset({"RS256", "ES256"}))  # fmt: skip


def claims(**overrides: Any) -> dict[str, Any]:
    base = {"iss": EXPECTED.issuer, "aud": "portico", "sub": "u", "iat": int(NOW), "exp": int(NOW) + 300,
            "nonce": "n-1"}  # fmt: skip
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(key: Any = RSA, alg: str = "RS256", **overrides: Any) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid}, claims(**overrides), key, algorithms=[alg])


def reason(value: str, key: Any = RSA, expected: Expected = EXPECTED) -> SsoFailure:
    with pytest.raises(SsoError) as info:
        check_id_token(value, key, expected, NOW)
    return info.value.reason


def test_a_good_token_passes_with_rsa_and_ec_keys() -> None:
    assert check_id_token(token(), RSA, EXPECTED, NOW)["sub"] == "u"
    assert check_id_token(token(EC, "ES256"), EC, EXPECTED, NOW)["sub"] == "u"
    assert check_id_token(token(aud=["portico", "api"], azp="portico"), RSA, EXPECTED, NOW)["sub"] == "u"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"iss": "https://idp.example.com/"}, SsoFailure.ID_TOKEN_ISSUER),
        ({"iss": None}, SsoFailure.ID_TOKEN_ISSUER),
        ({"aud": "other"}, SsoFailure.ID_TOKEN_AUDIENCE),
        ({"aud": ["other"]}, SsoFailure.ID_TOKEN_AUDIENCE),
        ({"aud": None}, SsoFailure.ID_TOKEN_AUDIENCE),
        ({"aud": ["portico", "other"]}, SsoFailure.ID_TOKEN_AZP),
        ({"azp": "other"}, SsoFailure.ID_TOKEN_AZP),
        ({"exp": int(NOW) - 61}, SsoFailure.ID_TOKEN_EXPIRED),
        ({"exp": None}, SsoFailure.ID_TOKEN_MALFORMED),
        ({"exp": "soon"}, SsoFailure.ID_TOKEN_MALFORMED),
        ({"iat": int(NOW) + 120}, SsoFailure.ID_TOKEN_NOT_YET_VALID),
        ({"nbf": int(NOW) + 120}, SsoFailure.ID_TOKEN_NOT_YET_VALID),
        ({"nonce": "n-2"}, SsoFailure.ID_TOKEN_NONCE),
        ({"nonce": None}, SsoFailure.ID_TOKEN_NONCE),
    ],
)
def test_bad_claims_are_refused_with_their_reason(overrides: dict[str, Any], expected: SsoFailure) -> None:
    assert reason(token(**overrides)) is expected


def test_clock_skew_is_tolerated_within_the_setting() -> None:
    assert check_id_token(token(exp=int(NOW) - 30, iat=int(NOW) + 30), RSA, EXPECTED, NOW)


def test_acr_is_required_when_configured() -> None:
    strict = replace(EXPECTED, acr_values=("urn:mfa",))
    assert reason(token(), expected=strict) is SsoFailure.ID_TOKEN_ACR
    assert check_id_token(token(acr="urn:mfa"), RSA, strict, NOW)


def test_a_signature_by_another_key_is_refused() -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "r1"})
    assert reason(token(other)) is SsoFailure.ID_TOKEN_SIGNATURE


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (_b64({"alg": "none"}) + "." + _b64(claims()) + ".", SsoFailure.ID_TOKEN_MALFORMED),  # unsigned
        (_b64({"alg": "none"}) + "." + _b64(claims()) + ".c2ln", SsoFailure.ID_TOKEN_ALGORITHM),
        ("not-a-jwt", SsoFailure.ID_TOKEN_MALFORMED),
        ("a.b.c", SsoFailure.ID_TOKEN_MALFORMED),
        (_b64({"alg": "RS256", "crit": ["x"]}) + "." + _b64(claims()) + ".c2ln", SsoFailure.ID_TOKEN_MALFORMED),
        (_b64({"alg": "RS256", "kid": 5}) + "." + _b64(claims()) + ".c2ln", SsoFailure.ID_TOKEN_MALFORMED),
        ("x" * 20_000, SsoFailure.ID_TOKEN_MALFORMED),
    ],
)
def test_malformed_or_unsigned_tokens_are_refused(value: str, expected: SsoFailure) -> None:
    assert reason(value) is expected


def test_hmac_with_the_client_secret_is_never_accepted() -> None:
    secret = OctKey.import_key(b"the-client-secret-the-client-secret")
    hs = jwt.encode({"alg": "HS256"}, claims(), secret, algorithms=["HS256"])
    with pytest.raises(SsoError) as info:
        read_header(hs, EXPECTED.algorithms)
    assert info.value.reason is SsoFailure.ID_TOKEN_ALGORITHM


def test_an_algorithm_that_does_not_fit_the_key_is_refused() -> None:
    assert reason(token(EC, "ES256"), key=RSA) is SsoFailure.ID_TOKEN_ALGORITHM


def test_nan_times_are_refused() -> None:
    raw = '{"iss": "https://idp.example.com", "aud": "portico", "sub": "u", "iat": 1, "exp": NaN, "nonce": "n-1"}'
    payload = base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()
    signed = jws.serialize_compact({"alg": "RS256", "kid": "r1"}, raw.encode(), RSA)
    assert signed.split(".")[1] == payload
    assert reason(signed) is SsoFailure.ID_TOKEN_MALFORMED

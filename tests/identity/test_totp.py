"""RFC 6238 TOTP and RFC 4226 HOTP: the RFCs' own vectors, the ±1 step window, replay, URIs. No database."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from portico.identity.totp import (
    Algorithm,
    decode_secret,
    hotp,
    match_step,
    new_secret,
    provisioning_uri,
    time_step,
    totp,
)

# RFC 6238 Appendix B: one ASCII seed per hash (20, 32 and 64 bytes).
SEEDS: dict[Algorithm, bytes] = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
RFC6238_VECTORS: list[tuple[int, Algorithm, str]] = [
    (59, "sha1", "94287082"),
    (59, "sha256", "46119246"),
    (59, "sha512", "90693936"),
    (1111111109, "sha1", "07081804"),
    (1111111109, "sha256", "68084774"),
    (1111111109, "sha512", "25091201"),
    (1111111111, "sha1", "14050471"),
    (1111111111, "sha256", "67062674"),
    (1111111111, "sha512", "99943326"),
    (1234567890, "sha1", "89005924"),
    (1234567890, "sha256", "91819424"),
    (1234567890, "sha512", "93441116"),
    (2000000000, "sha1", "69279037"),
    (2000000000, "sha256", "90698825"),
    (2000000000, "sha512", "38618901"),
    (20000000000, "sha1", "65353130"),
    (20000000000, "sha256", "77737706"),
    (20000000000, "sha512", "47863826"),
]
# RFC 4226 Appendix D: HOTP-SHA-1, 6 digits, counters 0-9, seed "12345678901234567890".
RFC4226_VECTORS = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]

SECRET = base64.b32encode(SEEDS["sha1"]).decode()  # GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
T0 = 1_800_000_000.0  # on a step boundary: step 60,000,000


def code_at(at: float) -> str:
    return totp(SEEDS["sha1"], at)


@pytest.mark.parametrize(("unix_time", "algorithm", "expected"), RFC6238_VECTORS)
def test_totp_matches_the_rfc_6238_appendix_b_vectors(unix_time: int, algorithm: Algorithm, expected: str) -> None:
    assert totp(SEEDS[algorithm], unix_time, digits=8, algorithm=algorithm) == expected


@pytest.mark.parametrize(("unix_time", "algorithm", "expected"), RFC6238_VECTORS)
def test_six_digit_codes_are_the_low_six_digits_of_the_rfc_vectors(
    unix_time: int, algorithm: Algorithm, expected: str
) -> None:
    # Truncate(...) mod 10^6 is (Truncate(...) mod 10^8) mod 10^6: the same algorithm, fewer digits.
    assert totp(SEEDS[algorithm], unix_time, algorithm=algorithm) == expected[-6:]


@pytest.mark.parametrize(("counter", "expected"), list(enumerate(RFC4226_VECTORS)))
def test_hotp_matches_the_rfc_4226_appendix_d_vectors(counter: int, expected: str) -> None:
    assert hotp(SEEDS["sha1"], counter) == expected


@pytest.mark.parametrize(
    ("unix_time", "step"), [(0, 0), (29.999, 0), (30, 1), (59, 1), (1111111109, 37037036), (T0, 60_000_000)]
)
def test_a_time_step_is_thirty_seconds(unix_time: float, step: int) -> None:
    assert time_step(unix_time) == step


@pytest.mark.parametrize(
    ("code_time", "accepted"),
    [
        (T0 - 31, False),  # two steps early
        (T0 - 30, True),  # previous step
        (T0 - 1, True),
        (T0, True),  # current step
        (T0 + 29, True),
        (T0 + 30, True),  # next step
        (T0 + 59, True),
        (T0 + 60, False),  # two steps late
    ],
)
def test_a_code_is_accepted_one_step_either_side_and_no_further(code_time: float, accepted: bool) -> None:
    step = match_step(SECRET, code_at(code_time), T0 + 10, after=None)
    assert step == (time_step(code_time) if accepted else None)


def test_an_accepted_code_is_refused_when_offered_again() -> None:
    code = code_at(T0)
    step = match_step(SECRET, code, T0, after=None)
    assert step == time_step(T0)
    assert match_step(SECRET, code, T0, after=step) is None
    assert match_step(SECRET, code, T0 + 25, after=step) is None  # still inside its window


def test_once_a_later_code_is_accepted_earlier_codes_are_refused() -> None:
    later = match_step(SECRET, code_at(T0 + 30), T0 + 5, after=None)
    assert later == time_step(T0 + 30)
    assert match_step(SECRET, code_at(T0), T0 + 5, after=later) is None
    assert match_step(SECRET, code_at(T0 - 30), T0 + 5, after=later) is None


def test_a_code_from_after_the_last_accepted_step_is_still_accepted() -> None:
    first = match_step(SECRET, code_at(T0 - 30), T0, after=None)
    assert match_step(SECRET, code_at(T0), T0, after=first) == time_step(T0)


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "12345",
        "1234567",
        "12a456",
        "-12345",
        "+12345",
        "\u0661\u0662\u0663\u0664\u0665\u0666",  # Arabic-Indic digits: str.isdigit, but not ASCII
        "１２３４５６",  # fullwidth digits  # noqa: RUF001
        "12345\x00",
    ],
)
def test_anything_but_six_ascii_digits_never_matches(typed: str) -> None:
    assert match_step(SECRET, typed, T0, after=None) is None


def test_spaces_inside_a_typed_code_are_ignored() -> None:
    code = code_at(T0)
    assert match_step(SECRET, f" {code[:3]} {code[3:]} ", T0, after=None) == time_step(T0)


def test_a_new_secret_is_160_random_bits_in_unpadded_base32() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert len(secret) == 32
        assert "=" not in secret
        assert len(decode_secret(secret)) == 20


@pytest.mark.parametrize("written", [SECRET, SECRET.lower(), " ".join([SECRET[:8], SECRET[8:16], SECRET[16:]])])
def test_a_secret_may_be_written_in_any_case_with_spaces(written: str) -> None:
    assert decode_secret(written) == SEEDS["sha1"]


@pytest.mark.parametrize("written", ["not base32!", "0189"])
def test_a_secret_that_is_not_base32_is_refused(written: str) -> None:
    with pytest.raises(ValueError, match="base32"):
        decode_secret(written)


@pytest.mark.parametrize(
    ("account", "issuer", "label"),
    [
        ("alice", "Portico", "Portico:alice"),
        ("alice@example.com", "Portico", "Portico:alice@example.com"),
        ("bob", "ACME Gateway", "ACME Gateway:bob"),
    ],
)
def test_the_provisioning_uri_follows_the_key_uri_format(account: str, issuer: str, label: str) -> None:
    uri = provisioning_uri(SECRET, account, issuer)
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/" + label
    assert " " not in uri
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {"secret": SECRET, "issuer": issuer, "algorithm": "SHA1", "digits": "6", "period": "30"}

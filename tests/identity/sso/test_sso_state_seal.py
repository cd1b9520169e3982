"""The sealed sign-in state, pure: opens only with its key, for its provider and state, before it expires."""

from __future__ import annotations

import pytest

from portico.identity.sso.errors import SsoError, SsoFailure
from portico.identity.sso.state import PendingSignIn, StateSealer, cookie_name

KEY = b"k" * 32
PENDING = PendingSignIn("idp", "state-1", "nonce-1", "verifier-1", "req-1", expires_at=1_000.0)


def failure(value: str, provider: str = "idp", state: str = "state-1", now: float = 10.0,
            key: bytes = KEY) -> SsoFailure:  # fmt: skip
    with pytest.raises(SsoError) as info:
        StateSealer(key).open(value, provider, state, now)
    return info.value.reason


def test_a_sealed_state_opens_to_what_was_sealed() -> None:
    sealed = StateSealer(KEY).seal(PENDING)
    assert StateSealer(KEY).open(sealed, "idp", "state-1", 10.0) == PENDING
    for secret in ("nonce-1", "verifier-1", "req-1"):
        assert secret not in sealed


def test_each_seal_is_different() -> None:
    assert StateSealer(KEY).seal(PENDING) != StateSealer(KEY).seal(PENDING)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"provider": "other"}, SsoFailure.STATE_INVALID),
        ({"state": "state-2"}, SsoFailure.STATE_INVALID),
        ({"key": b"j" * 32}, SsoFailure.STATE_INVALID),
        ({"now": 1_000.0}, SsoFailure.STATE_EXPIRED),
    ],
)
def test_a_state_opens_only_for_its_provider_state_and_key_in_time(change: dict[str, object],
                                                                   expected: SsoFailure) -> None:  # fmt: skip
    assert failure(StateSealer(KEY).seal(PENDING), **change) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("garbage", ["", "AAAA", "!!!", "A" * 200, "eyJhbGciOiJub25lIn0"])
def test_garbage_does_not_open(garbage: str) -> None:
    assert failure(garbage) is SsoFailure.STATE_INVALID


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        StateSealer(b"short")


def test_cookie_names_depend_on_the_state_only() -> None:
    assert cookie_name("a") == cookie_name("a") != cookie_name("b")
    assert cookie_name("a").startswith("portico_sso_")

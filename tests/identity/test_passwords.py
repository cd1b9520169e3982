"""Argon2id hashing and the password policy: pure functions, no database."""

from __future__ import annotations

import unicodedata

import pytest

from portico.identity.passwords import (
    DEFAULT_PARAMS,
    MAX_PASSWORD_CHARS,
    Argon2Params,
    PasswordHasher,
    PasswordProblem,
    check_password,
)

FAST = Argon2Params(time_cost=1, memory_kib=1024)
GOOD = "violet-otter-harbour-42"


@pytest.mark.parametrize(
    ("password", "username", "problem"),
    [
        (GOOD, "alice", None),
        ("a" * 11 + "b", "alice", None),
        ("short-pass1", "alice", PasswordProblem.TOO_SHORT),
        ("", "alice", PasswordProblem.TOO_SHORT),
        ("ab" * 6, "alice", None),
        ("x" * (MAX_PASSWORD_CHARS + 1), "alice", PasswordProblem.TOO_LONG),
        ("xy" * (MAX_PASSWORD_CHARS // 2), "alice", None),
        ("alice.example", "alice.example", PasswordProblem.SAME_AS_USERNAME),
        ("Alice.Example", "alice.example", PasswordProblem.SAME_AS_USERNAME),
        ("aaaaaaaaaaaaaaaa", "alice", PasswordProblem.REPEATED_CHARACTER),
        ("AAAAaaaaAAAAaaaa", "alice", PasswordProblem.REPEATED_CHARACTER),
        ("password1234", "alice", PasswordProblem.TOO_COMMON),
        ("PassWord1234", "alice", PasswordProblem.TOO_COMMON),
        ("1qaz2wsx3edc", "alice", PasswordProblem.TOO_COMMON),
        ("123456789012", "alice", PasswordProblem.TOO_COMMON),
        ("correcthorsebatterystaple", "alice", PasswordProblem.TOO_COMMON),
        (
            "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44\uff11\uff12\uff13\uff14",
            "alice",
            PasswordProblem.TOO_COMMON,
        ),  # fullwidth
        ("päßwörd-über-alles", "alice", None),
        ("🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔒", "alice", None),
    ],
)
def test_the_password_policy_names_the_first_problem(password: str, username: str, problem: object) -> None:
    assert check_password(password, username) == problem


@pytest.mark.parametrize(
    ("password", "problem"), [("violet-otter-42", PasswordProblem.TOO_SHORT), ("violet-otter-420", None)]
)
def test_a_longer_minimum_can_be_configured(password: str, problem: object) -> None:
    assert check_password(password, "bob", min_chars=16) == problem


def test_the_minimum_can_not_be_configured_below_twelve() -> None:
    assert check_password("abcdefgh", "bob", min_chars=8) is PasswordProblem.TOO_SHORT


def test_every_problem_has_a_sentence_without_the_password() -> None:
    for problem in PasswordProblem:
        assert problem.describe()
        assert problem.value.islower()


def test_the_default_parameters_are_argon2id_with_46_mib_and_two_passes() -> None:
    params = DEFAULT_PARAMS
    assert (params.time_cost, params.memory_kib, params.parallelism, params.hash_bytes) == (2, 47_104, 1, 32)
    stored = PasswordHasher().hash(GOOD)
    assert stored.startswith("$argon2id$v=19$m=47104,t=2,p=1$")


def test_a_hash_verifies_its_password_and_no_other() -> None:
    hasher = PasswordHasher(FAST)
    stored = hasher.hash(GOOD)
    assert GOOD not in stored
    assert hasher.verify(stored, GOOD)
    assert not hasher.verify(stored, GOOD + " ")
    assert not hasher.verify(stored, GOOD.upper())
    assert not hasher.verify(stored, "")


def test_the_same_password_hashes_differently_each_time() -> None:
    hasher = PasswordHasher(FAST)
    assert hasher.hash(GOOD) != hasher.hash(GOOD)


def test_composed_and_decomposed_unicode_are_the_same_password() -> None:
    hasher = PasswordHasher(FAST)
    composed = "café-crème-brûlée"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert hasher.verify(hasher.hash(composed), decomposed)


def test_a_lone_surrogate_is_just_a_wrong_password() -> None:
    hasher = PasswordHasher(FAST)
    stored = hasher.hash(GOOD)
    assert not hasher.verify(stored, "\ud800" + GOOD)
    assert hasher.verify(hasher.hash("\ud800" + GOOD), "\ud800" + GOOD)


def test_an_absurdly_long_password_is_refused_without_error() -> None:
    hasher = PasswordHasher(FAST)
    assert not hasher.verify(hasher.hash(GOOD), "x" * 10 * MAX_PASSWORD_CHARS)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plaintext-password",
        "$2b$12$KIXQJQqZ6ZzJ3u8m0b7t3eC6n1f2q3r4s5t6u7v8w9x0y1z2a3b4c",  # bcrypt
        "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ",  # no tag
        "$argon2id$v=19$m=1024,t=1,p=1$!!!$!!!",
    ],
)
def test_a_malformed_stored_hash_never_matches(stored: str) -> None:
    hasher = PasswordHasher(FAST)
    assert not hasher.verify(stored, GOOD)
    assert hasher.needs_rehash(stored)


@pytest.mark.parametrize(
    ("made_with", "checked_with", "needs"),
    [
        (FAST, FAST, False),
        (FAST, Argon2Params(time_cost=2, memory_kib=1024), True),
        (FAST, Argon2Params(time_cost=1, memory_kib=2048), True),
        (FAST, Argon2Params(time_cost=1, memory_kib=1024, parallelism=2), True),
        (FAST, Argon2Params(time_cost=1, memory_kib=1024, hash_bytes=16), True),
    ],
)
def test_a_hash_needs_rehashing_when_the_parameters_change(
    made_with: Argon2Params, checked_with: Argon2Params, needs: bool
) -> None:
    stored = PasswordHasher(made_with).hash(GOOD)
    assert PasswordHasher(checked_with).needs_rehash(stored) is needs
    assert PasswordHasher(checked_with).verify(stored, GOOD)  # old hashes keep working until rehashed


def test_a_dummy_verification_does_the_work_and_matches_nothing() -> None:
    hasher = PasswordHasher(FAST)
    assert hasher.dummy_verify(GOOD) is None
    assert hasher.dummy_verify("") is None

"""Password hashing (Argon2id) and the minimum password policy. Pure: no I/O, no clock, no database.

The parameters (`DEFAULT_PARAMS`) are chosen for a small server (2 cores), measured with argon2-cffi 25.1 on
one core of an AMD EPYC: about 100 ms per hash or verify.

    Argon2id, m = 47,104 KiB (46 MiB), t = 2 passes, p = 1 lane, 16-byte salt, 32-byte tag

That is twice the time cost of OWASP's first recommendation (m = 46 MiB, t = 1, p = 1) and well above RFC
9106's memory-constrained option. One lane (p = 1) keeps each hash on one core, so a 2-core server still
verifies two logins at once; the caller bounds how many run together (each holds 46 MiB while it runs).
Stored hashes are PHC strings (`$argon2id$v=19$m=47104,t=2,p=1$<salt>$<tag>`), so they carry their own
parameters: raising `DEFAULT_PARAMS` later makes `needs_rehash` true for older hashes, which are upgraded at
the user's next successful login.

Passwords are normalised to Unicode NFKC before hashing (NIST SP 800-63B 5.1.1.2), so the same password typed
on two keyboards that compose characters differently still matches. The policy (`check_password`) refuses
passwords shorter than 12 characters, longer than 1,024, equal to the username, made of one repeated
character, or on a small built-in list of the most common long passwords. It returns a typed problem, never
an exception, and never echoes the password.
"""

from __future__ import annotations

import enum
import os
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_CHARS = 12
# Long enough for any passphrase; bounds the work an unauthenticated login request can ask for.
MAX_PASSWORD_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """Argon2id cost parameters. `memory_kib` is in KiB (Argon2's unit)."""

    time_cost: int = 2
    memory_kib: int = 47_104
    parallelism: int = 1
    hash_bytes: int = 32
    salt_bytes: int = 16


DEFAULT_PARAMS = Argon2Params()


class PasswordProblem(enum.StrEnum):
    """Why a new password is refused (the value is a stable code for CLIs, forms and tests)."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    SAME_AS_USERNAME = "same_as_username"
    REPEATED_CHARACTER = "repeated_character"
    TOO_COMMON = "too_common"

    def describe(self, min_chars: int = MIN_PASSWORD_CHARS) -> str:
        """A sentence for the person choosing the password."""
        return {
            PasswordProblem.TOO_SHORT: f"Passwords must be at least {min_chars} characters long",
            PasswordProblem.TOO_LONG: f"Passwords must be at most {MAX_PASSWORD_CHARS} characters long",
            PasswordProblem.SAME_AS_USERNAME: "The password must not be the username",
            PasswordProblem.REPEATED_CHARACTER: "The password must not be one character repeated",
            PasswordProblem.TOO_COMMON: "This password is one of the most common passwords",
        }[self]


def normalize_password(password: str) -> str:
    """`password` in Unicode NFKC, the form that is hashed and checked."""
    return unicodedata.normalize("NFKC", password)


def check_password(password: str, username: str, *, min_chars: int = MIN_PASSWORD_CHARS) -> PasswordProblem | None:
    """The first reason `password` may not be set for `username`, or None when it is acceptable.

    Lengths count Unicode characters after NFKC normalisation; comparisons ignore case.
    """
    normal = normalize_password(password)
    folded = normal.casefold()
    if len(normal) < max(min_chars, MIN_PASSWORD_CHARS):
        return PasswordProblem.TOO_SHORT
    if len(normal) > MAX_PASSWORD_CHARS:
        return PasswordProblem.TOO_LONG
    if folded == normalize_password(username).casefold():
        return PasswordProblem.SAME_AS_USERNAME
    if len(set(folded)) == 1:
        return PasswordProblem.REPEATED_CHARACTER
    if folded in COMMON_PASSWORDS:
        return PasswordProblem.TOO_COMMON
    return None


@dataclass(frozen=True)
class PasswordHasher:
    """Hashes and verifies passwords with Argon2id at `params`. Thread-safe; each call costs one full hash.

    Verification compares in constant time (libargon2's `argon2_verify`). `dummy_verify` spends the same work
    against a hash of a random password, for logins naming a user who does not exist.
    """

    params: Argon2Params = DEFAULT_PARAMS
    _argon2: argon2.PasswordHasher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        p = self.params
        hasher = argon2.PasswordHasher(
            time_cost=p.time_cost,
            memory_cost=p.memory_kib,
            parallelism=p.parallelism,
            hash_len=p.hash_bytes,
            salt_len=p.salt_bytes,
            type=argon2.Type.ID,
        )
        object.__setattr__(self, "_argon2", hasher)

    def hash(self, password: str) -> str:
        """The PHC string of `password` (normalised) with a fresh random salt."""
        return self._argon2.hash(_secret_bytes(password))

    def verify(self, stored_hash: str, password: str) -> bool:
        """Whether `password` matches `stored_hash`. A malformed or non-Argon2 hash never matches."""
        if len(password) > 4 * MAX_PASSWORD_CHARS:  # NFKC can expand text; never normalise unbounded input
            self.dummy_verify(password[: 4 * MAX_PASSWORD_CHARS])
            return False
        try:
            return self._argon2.verify(stored_hash, _secret_bytes(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def dummy_verify(self, password: str) -> None:
        """Spend one verification's work and learn nothing: the login of an unknown user costs what a real one
        costs, so response times do not reveal which usernames exist."""
        self.verify(self._dummy_hash, password[: 4 * MAX_PASSWORD_CHARS])

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether `stored_hash` was made with other parameters than this hasher's (or is not Argon2id at all)."""
        try:
            return self._argon2.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return True

    @cached_property
    def _dummy_hash(self) -> str:
        return self._argon2.hash(os.urandom(16).hex())


def _secret_bytes(password: str) -> bytes:
    # `surrogatepass`: text from JSON may hold lone surrogates; they hash (and fail to match) like any other text.
    return normalize_password(password).encode("utf-8", "surrogatepass")


# Long passwords (12+ characters) that top public breach-frequency lists; shorter ones fail on length anyway.
# Compared after NFKC and case folding. A starting point, not a breach corpus.
COMMON_PASSWORDS: frozenset[str] = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456789123",
        "123123123123",
        "121212121212",
        "112233445566",
        "098765432109",
        "987654321098",
        "qwerty123456",
        "qwertyuiop12",
        "qwertyuiop123",
        "qwertyuiopasdf",
        "qwertyuiopasdfghjkl",
        "qwertyqwerty",
        "1q2w3e4r5t6y",
        "1q2w3e4r5t6y7u",
        "q1w2e3r4t5y6",
        "1qaz2wsx3edc",
        "1qaz2wsx3edc4rfv",
        "zaq12wsxcde3",
        "123qweasdzxc",
        "asdfghjkl123",
        "asdfasdfasdf",
        "abcdefghijkl",
        "abc123abc123",
        "abcd12345678",
        "password1234",
        "password12345",
        "password123!",
        "password@123",
        "passwordpassword",
        "p@ssw0rd1234",
        "p@ssword1234",
        "iloveyou1234",
        "iloveyouiloveyou",
        "letmein12345",
        "welcome12345",
        "welcome@1234",
        "changeme1234",
        "changeme123!",
        "administrator",
        "admin1234567",
        "adminadmin123",
        "football1234",
        "baseball1234",
        "sunshine1234",
        "princess1234",
        "superman1234",
        "trustno1trustno1",
        "correcthorsebatterystaple",
        "portico12345",
        "portico123456",
    }
)

"""Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP), and each user's enrolment records.

The first half is pure (no I/O; the time is always passed in). The second keeps the `user_totp` rows on a
connection the caller opened (`UserDirectory` owns the transactions and maps database errors): at most one
`pending` and one `active` secret per user, each sealed with the vault's AES-256-GCM envelope
(`portico.vault.crypto`) at address (`user:<subject>`, `totp`), and the last time step accepted.

Portico's profile is the one every authenticator app speaks: HMAC-SHA-1, 6 digits, 30-second steps, a
160-bit random secret written in unpadded base32. A code is accepted for the current step and one step either
side (clock drift), and only for a step later than the last one accepted for that user (`after`): a code that
has been accepted once can never be accepted again, nor can any code from an earlier step (RFC 6238 5.2).

    T     = floor(unix_time / 30)
    HOTP  = Truncate(HMAC-SHA-1(secret, u64be(T))) mod 10^6        (dynamic truncation, RFC 4226 5.3)

SHA-256 and SHA-512 (RFC 6238's other variants) are supported by `totp` for the RFC's test vectors; the
directory only issues SHA-1 secrets, because that is what authenticator apps reliably implement.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from portico.errors import PorticoError
from portico.identity.user_tables import user_totp, users
from portico.vault.crypto import Keyring, Sealed, seal, unseal

Algorithm = Literal["sha1", "sha256", "sha512"]

STEP_S = 30
DIGITS = 6
WINDOW_STEPS = 1
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommended length for HMAC-SHA-1
SECRET_NAME = "totp"


class TotpEnrolmentError(PorticoError):
    """Confirming a TOTP enrolment that was never begun (or was already confirmed)."""

    default_public = "No TOTP enrolment is pending for this user: begin one first"


def new_secret() -> str:
    """A fresh random 160-bit secret, as unpadded base32 (32 characters, the form authenticator apps take)."""
    return base64.b32encode(os.urandom(SECRET_BYTES)).decode("ascii").rstrip("=")


def decode_secret(secret: str) -> bytes:
    """The key bytes of a base32 secret (case, spaces and missing padding tolerated).

    Raises:
        ValueError: not base32.
    """
    cleaned = "".join(secret.split()).upper()
    cleaned += "=" * (-len(cleaned) % 8)
    try:
        return base64.b32decode(cleaned)
    except binascii.Error:
        raise ValueError("a TOTP secret must be base32") from None


def hotp(key: bytes, counter: int, *, digits: int = DIGITS, algorithm: Algorithm = "sha1") -> str:
    """RFC 4226 HOTP: the `digits`-digit code of `counter` under `key`, zero-padded."""
    mac = hmac.new(key, struct.pack(">Q", counter), getattr(hashlib, algorithm)).digest()
    offset = mac[-1] & 0x0F
    number = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFF_FFFF
    return str(number % 10**digits).zfill(digits)


def time_step(at: float, step_s: int = STEP_S) -> int:
    """The RFC 6238 time step `T` containing the instant `at` (Unix seconds)."""
    return int(at // step_s)


def totp(key: bytes, at: float, *, digits: int = DIGITS, step_s: int = STEP_S, algorithm: Algorithm = "sha1") -> str:
    """RFC 6238 TOTP: the code for the instant `at` (Unix seconds)."""
    return hotp(key, time_step(at, step_s), digits=digits, algorithm=algorithm)


def match_step(secret: str, code: str, at: float, *, after: int | None, window: int = WINDOW_STEPS) -> int | None:
    """The time step that `code` is valid for, within `window` steps of `at` (Unix seconds) and later than `after` (the
    last step accepted for this secret, None if none yet); None when there is none.

    Spaces in `code` are ignored; anything other than exactly six digits never matches. Every candidate step
    is compared (in constant time), so the answer's timing does not say which step matched. The caller must
    record the returned step as the new `after` atomically with accepting it.

    Raises:
        ValueError: `secret` is not base32 (a stored secret is always valid; this means corruption).
    """
    key = decode_secret(secret)
    typed = "".join(code.split())
    if len(typed) != DIGITS or not typed.isascii() or not typed.isdigit():
        return None
    now = time_step(at)
    matched: int | None = None
    for step in range(now - window, now + window + 1):
        if hmac.compare_digest(hotp(key, step), typed) and (after is None or step > after):
            matched = step  # the latest matching step: accepting it refuses every earlier code from now on
    return matched


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The `otpauth://totp/…` URI an authenticator app enrols from (Key Uri Format), e.g. as a QR code.

    It holds the secret: show it only to the user enrolling, never log it.
    """
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode(
        {"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": STEP_S},
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


# ------------------------------------------------------------------------- enrolment records (user_totp)


async def begin_enrolment(conn: AsyncConnection, keys: Keyring, user_id: int, subject: str, at: float) -> str:
    """Store a fresh pending secret for the user (replacing any pending one; an active one stays in force) and
    return it, for the provisioning URI."""
    secret = new_secret()
    sealed = seal(keys.current, secret_scope(subject), SECRET_NAME, secret)
    sealed_columns = {"key_id": sealed.key_id, "nonce": sealed.nonce, "ciphertext": sealed.ciphertext}
    row = {"user_id": user_id, "state": "pending", "last_step": None, "created_at": _utc(at), **sealed_columns}
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(user_totp).values(row)
    replace = {**sealed_columns, "created_at": insert.excluded.created_at}
    await conn.execute(
        insert.on_conflict_do_update(index_elements=[user_totp.c.user_id, user_totp.c.state], set_=replace)
    )
    return secret


async def confirm_enrolment(
    conn: AsyncConnection, keys: Keyring, user_id: int, subject: str, code: str, at: float
) -> bool:
    """Make the pending secret the active one if `code` is valid for it at `at`, recording the code's step so it
    cannot sign in afterwards. False, changing nothing, for a wrong code.

    Raises:
        TotpEnrolmentError: nothing is pending (or it was restarted while this code was checked).
        VaultKeyError, SecretIntegrityError: the pending secret cannot be opened.
    """
    query = select(user_totp).where(user_totp.c.user_id == user_id, user_totp.c.state == "pending")
    row = (await conn.execute(query.with_for_update())).one_or_none()
    if row is None:
        raise TotpEnrolmentError()
    step = match_step(open_secret(keys, subject, row), code, at, after=None)
    if step is None:
        return False
    await conn.execute(delete(user_totp).where(user_totp.c.user_id == user_id, user_totp.c.state == "active"))
    activated = await conn.execute(
        update(user_totp)
        .where(user_totp.c.user_id == user_id, user_totp.c.state == "pending", user_totp.c.nonce == row.nonce)
        .values(state="active", last_step=step, created_at=_utc(at))
    )
    if activated.rowcount != 1:  # enrolment restarted meanwhile: the caller's transaction rolls the delete back
        raise TotpEnrolmentError()
    return True


async def accept_code(
    conn: AsyncConnection, keys: Keyring, user_id: int, subject: str, active: Any, code: str, at: float
) -> bool:
    """Whether `code` is valid at `at` for the `active` row (key_id, nonce, ciphertext, last_step) and later
    than any code accepted before. Its step is recorded by a compare-and-set in the same statement that
    accepts it, so a replay is refused even when it races the original on another replica.

    Raises:
        VaultKeyError, SecretIntegrityError: the secret cannot be opened (the sign-in fails closed).
    """
    step = match_step(open_secret(keys, subject, active), code, at, after=active.last_step)
    if step is None:
        return False
    result = await conn.execute(
        update(user_totp)
        .where(user_totp.c.user_id == user_id, user_totp.c.state == "active", user_totp.c.nonce == active.nonce)
        .where(or_(user_totp.c.last_step.is_(None), user_totp.c.last_step < step))
        .values(last_step=step)
    )
    return result.rowcount == 1


async def remove_enrolments(conn: AsyncConnection, user_id: int) -> None:
    """Forget the user's active and pending secrets."""
    await conn.execute(delete(user_totp).where(user_totp.c.user_id == user_id))


async def reseal_all(conn: AsyncConnection, keys: Keyring) -> int:
    """Re-seal every secret not under `keys.current` with it (rows locked on PostgreSQL; each update guarded
    by the nonce read). Returns how many rows changed.

    Raises:
        VaultKeyError, SecretIntegrityError: a secret cannot be opened (the caller's transaction rolls back).
    """
    query = (
        select(user_totp, users.c.subject)
        .join(users, users.c.id == user_totp.c.user_id)
        .where(user_totp.c.key_id != keys.current.id)
        .with_for_update(of=user_totp)
    )
    count = 0
    for row in (await conn.execute(query)).all():
        fresh = seal(keys.current, secret_scope(row.subject), SECRET_NAME, open_secret(keys, row.subject, row))
        result = await conn.execute(
            update(user_totp)
            .where(user_totp.c.user_id == row.user_id, user_totp.c.state == row.state, user_totp.c.nonce == row.nonce)
            .values(key_id=fresh.key_id, nonce=fresh.nonce, ciphertext=fresh.ciphertext)
        )
        count += result.rowcount
    return count


def open_secret(keys: Keyring, subject: str, row: Any) -> str:
    """The base32 secret of a `user_totp` row (anything with key_id, nonce and ciphertext) of `subject`.

    Raises:
        VaultKeyError, SecretIntegrityError: as `portico.vault.crypto.unseal`.
    """
    sealed = Sealed(row.key_id, bytes(row.nonce), bytes(row.ciphertext))
    return unseal(keys, secret_scope(subject), SECRET_NAME, sealed)


def secret_scope(subject: str) -> str:
    """The envelope address scope of a user's TOTP secret: `user:<subject>` (name `totp`)."""
    return f"user:{subject}"


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)

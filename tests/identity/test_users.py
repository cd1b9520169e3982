"""`UserDirectory` on SQLite and PostgreSQL: accounts, groups, sign-in, lockout, TOTP, and what is stored."""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
from sqlalchemy import text, update

from portico.identity.passwords import Argon2Params, PasswordHasher, PasswordProblem
from portico.identity.settings import LocalUserSettings
from portico.identity.totp import TotpEnrolmentError, decode_secret, totp
from portico.identity.user_tables import user_totp, users
from portico.identity.users import (
    AuthFailure,
    AuthResult,
    UserDirectory,
    UserExistsError,
    UsernameError,
    UserNotFoundError,
    WeakPasswordError,
)
from portico.store import Store
from portico.vault import SecretIntegrityError, Vault, VaultSettings
from portico.vault.crypto import parse_key
from tests.identity.conftest import START, ManualClock

pytestmark = pytest.mark.anyio

PASSWORD = "violet-otter-harbour-42"
OTHER = "amber-falcon-meadow-77"
TABLES = ("users", "groups", "group_members", "user_totp")


async def raw_dump(store: Store) -> str:
    """Every column of every identity table, as text and as the bytes' own text, for "never stored" checks."""
    out: list[str] = []
    async with store.engine.connect() as conn:
        for table in TABLES:
            for row in (await conn.execute(text(f"SELECT * FROM {table}"))).all():
                for value in row:
                    out.append(repr(value))
                    if isinstance(value, bytes | memoryview):
                        out.append(bytes(value).decode("latin-1"))
    return "\n".join(out)


async def enrol(directory: UserDirectory, clock: ManualClock, username: str = "alice") -> str:
    """Enrol and confirm TOTP for `username`; returns the secret (read back from the URI, as an app would)."""
    uri = await directory.begin_totp_enrolment(username)
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    assert await directory.confirm_totp(username, code(secret, clock.now))
    clock.advance(30)  # the confirming code is spent; the next sign-in uses the next step's code
    return secret


def code(secret: str, at: float) -> str:
    return totp(decode_secret(secret), at)


# ------------------------------------------------------------------------------------------ accounts


async def test_an_added_user_reads_back_with_its_groups_and_no_mfa(directory: UserDirectory) -> None:
    added = await directory.add_user("Alice", PASSWORD, display_name="Alice Liddell", groups=["eng", "sre", "eng"])
    assert added == await directory.get_user("alice")
    assert (added.username, added.subject, added.display_name) == ("alice", "alice", "Alice Liddell")
    assert added.groups == {"eng", "sre"}
    assert (added.disabled, added.locked_until, added.mfa) == (False, None, "none")
    assert added.created_at.timestamp() == added.updated_at.timestamp() == START


async def test_a_subject_can_differ_from_the_username(directory: UserDirectory) -> None:
    await directory.add_user("bob", PASSWORD, subject="local|0001")
    assert (await directory.authenticate("bob", PASSWORD)).subject == "local|0001"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"username": "alice"}, {"username": "alice"}),
        ({"username": "alice"}, {"username": "ALICE"}),
        ({"username": "alice", "subject": "s-1"}, {"username": "bob", "subject": "s-1"}),
        ({"username": "alice"}, {"username": "bob", "subject": "alice"}),
    ],
)
async def test_a_taken_username_or_subject_is_refused(
    directory: UserDirectory, first: dict[str, Any], second: dict[str, Any]
) -> None:
    await directory.add_user(password=PASSWORD, **first)
    with pytest.raises(UserExistsError):
        await directory.add_user(password=OTHER, **second)
    assert len(await directory.list_users()) == 1


@pytest.mark.parametrize(
    "arguments",
    [
        {"username": ""},
        {"username": "-alice"},
        {"username": "al ice"},
        {"username": "alice:admin"},
        {"username": "älice"},
        {"username": "a" * 129},
        {"username": "alice", "groups": ["eng team"]},
        {"username": "alice", "groups": [""]},
        {"username": "alice", "subject": "has space"},
        {"username": "alice", "subject": ""},
    ],
)
async def test_names_of_the_wrong_shape_are_refused(directory: UserDirectory, arguments: dict[str, Any]) -> None:
    with pytest.raises(UsernameError):
        await directory.add_user(password=PASSWORD, **arguments)
    assert await directory.list_users() == ()


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short-pw-1", PasswordProblem.TOO_SHORT),
        ("alice.example", PasswordProblem.SAME_AS_USERNAME),
        ("Password1234", PasswordProblem.TOO_COMMON),
    ],
)
async def test_a_weak_password_is_refused_with_its_reason(
    directory: UserDirectory, password: str, problem: PasswordProblem
) -> None:
    with pytest.raises(WeakPasswordError) as caught:
        await directory.add_user("alice.example", password)
    assert caught.value.problem is problem
    assert password not in caught.value.public
    assert await directory.list_users() == ()


async def test_operations_on_an_unknown_user_say_so(directory: UserDirectory) -> None:
    for attempt in (
        directory.get_user("ghost"),
        directory.set_password("ghost", PASSWORD),
        directory.disable_user("ghost"),
        directory.add_to_group("ghost", "eng"),
        directory.begin_totp_enrolment("ghost"),
    ):
        with pytest.raises(UserNotFoundError):
            await attempt


async def test_users_are_listed_by_username(directory: UserDirectory) -> None:
    for name in ("carol", "alice", "bob"):
        await directory.add_user(name, PASSWORD)
    assert [u.username for u in await directory.list_users()] == ["alice", "bob", "carol"]


# -------------------------------------------------------------------------------------------- groups


async def test_group_membership_is_many_to_many(directory: UserDirectory) -> None:
    await directory.add_user("alice", PASSWORD, groups=["eng"])
    await directory.add_user("bob", PASSWORD)
    await directory.add_to_group("bob", "eng")
    await directory.add_to_group("bob", "ops")
    await directory.add_to_group("bob", "ops")  # twice is fine
    assert await directory.groups_of("bob") == {"eng", "ops"}
    assert await directory.list_groups() == {"eng": 2, "ops": 1}
    await directory.remove_from_group("bob", "ops")
    await directory.remove_from_group("bob", "never-joined")
    assert await directory.groups_of("bob") == {"eng"}
    assert await directory.list_groups() == {"eng": 2, "ops": 0}
    assert (await directory.authenticate("bob", PASSWORD)).groups == {"eng"}


# ------------------------------------------------------------------------------------------- sign-in


async def test_the_right_password_signs_in_with_groups_and_pwd(directory: UserDirectory) -> None:
    await directory.add_user("alice", PASSWORD, groups=["eng"])
    result = await directory.authenticate("ALICE", PASSWORD)
    assert result == AuthResult(subject="alice", groups=frozenset({"eng"}), amr=("pwd",))
    assert result.ok
    assert not result.mfa


@pytest.mark.requirement("identity:no-username-enumeration")
@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", OTHER),  # known user, wrong password
        ("mallory", PASSWORD),  # unknown user
        ("mal lory", PASSWORD),  # a name no account can have
        ("alice", ""),
        ("", ""),
    ],
)
async def test_an_unknown_user_and_a_wrong_password_get_the_same_answer(
    directory: UserDirectory, username: str, password: str
) -> None:
    await directory.add_user("alice", PASSWORD)
    result = await directory.authenticate(username, password)
    assert result == AuthResult(failure=AuthFailure.BAD_CREDENTIALS)
    assert result.subject is None
    assert result.failure is not None
    assert result.failure.public == "Invalid username or password"


@pytest.mark.requirement("identity:lockout")
async def test_repeated_failures_lock_the_account_until_the_lockout_ends(
    directory: UserDirectory, clock: ManualClock
) -> None:
    await directory.add_user("alice", PASSWORD)
    for _ in range(3):
        assert (await directory.authenticate("alice", OTHER)).failure is AuthFailure.BAD_CREDENTIALS
    assert (await directory.authenticate("alice", PASSWORD)).failure is AuthFailure.LOCKED
    assert (await directory.get_user("alice")).locked_until is not None
    clock.advance(599)
    assert (await directory.authenticate("alice", PASSWORD)).failure is AuthFailure.LOCKED
    clock.advance(1)
    assert (await directory.authenticate("alice", PASSWORD)).ok
    assert (await directory.get_user("alice")).locked_until is None


async def test_a_success_resets_the_count_of_failures(directory: UserDirectory) -> None:
    await directory.add_user("alice", PASSWORD)
    for _ in range(2):
        for _ in range(2):
            await directory.authenticate("alice", OTHER)
        assert (await directory.authenticate("alice", PASSWORD)).ok


async def test_after_a_lockout_the_count_starts_afresh(directory: UserDirectory, clock: ManualClock) -> None:
    await directory.add_user("alice", PASSWORD)
    for _ in range(3):
        await directory.authenticate("alice", OTHER)
    clock.advance(600)
    for _ in range(2):
        assert (await directory.authenticate("alice", OTHER)).failure is AuthFailure.BAD_CREDENTIALS
    assert (await directory.authenticate("alice", PASSWORD)).ok


async def test_a_locked_account_is_refused_even_with_the_right_code(
    directory: UserDirectory, clock: ManualClock
) -> None:
    await directory.add_user("alice", PASSWORD)
    secret = await enrol(directory, clock)
    for _ in range(3):
        await directory.authenticate("alice", OTHER)
    assert (await directory.authenticate("alice", PASSWORD, code(secret, clock.now))).failure is AuthFailure.LOCKED


@pytest.mark.parametrize(("limit", "lockout_s"), [(1, 60.0), (5, 3600.0)])
async def test_the_lockout_limit_and_duration_are_settings(
    store: Store, vault: Vault, fast_hasher: PasswordHasher, clock: ManualClock, limit: int, lockout_s: float
) -> None:
    settings = LocalUserSettings(max_failed_logins=limit, lockout_s=lockout_s)
    directory = UserDirectory(store, vault, settings, hasher=fast_hasher, clock=clock)
    await directory.add_user("alice", PASSWORD)
    for _ in range(limit - 1):
        await directory.authenticate("alice", OTHER)
    assert (await directory.authenticate("alice", PASSWORD)).ok
    for _ in range(limit):
        await directory.authenticate("alice", OTHER)
    clock.advance(lockout_s - 1)
    assert (await directory.authenticate("alice", PASSWORD)).failure is AuthFailure.LOCKED
    clock.advance(1)
    assert (await directory.authenticate("alice", PASSWORD)).ok


async def test_failures_for_an_unknown_user_lock_nothing(directory: UserDirectory) -> None:
    for _ in range(5):
        assert (await directory.authenticate("ghost", PASSWORD)).failure is AuthFailure.BAD_CREDENTIALS
    await directory.add_user("ghost", PASSWORD)
    assert (await directory.authenticate("ghost", PASSWORD)).ok


async def test_a_disabled_user_is_told_only_after_the_right_password(directory: UserDirectory) -> None:
    await directory.add_user("alice", PASSWORD)
    await directory.disable_user("alice")
    assert (await directory.authenticate("alice", OTHER)).failure is AuthFailure.BAD_CREDENTIALS
    assert (await directory.authenticate("alice", PASSWORD)).failure is AuthFailure.DISABLED
    assert (await directory.get_user("alice")).disabled
    await directory.enable_user("alice")
    assert (await directory.authenticate("alice", PASSWORD)).ok


async def test_a_new_password_replaces_the_old_and_lifts_a_lockout(directory: UserDirectory) -> None:
    await directory.add_user("alice", PASSWORD)
    for _ in range(3):
        await directory.authenticate("alice", OTHER)
    await directory.set_password("alice", OTHER)
    assert (await directory.authenticate("alice", PASSWORD)).failure is AuthFailure.BAD_CREDENTIALS
    assert (await directory.authenticate("alice", OTHER)).ok


async def test_a_hash_with_old_parameters_is_upgraded_at_the_next_sign_in(
    store: Store, vault: Vault, fast_hasher: PasswordHasher, clock: ManualClock
) -> None:
    await UserDirectory(store, vault, hasher=fast_hasher, clock=clock).add_user("alice", PASSWORD)
    stronger = PasswordHasher(Argon2Params(time_cost=2, memory_kib=2048))
    directory = UserDirectory(store, vault, hasher=stronger, clock=clock)
    assert (await directory.authenticate("alice", PASSWORD)).ok
    async with store.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT password_hash FROM users"))).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    assert not stronger.needs_rehash(stored)
    assert (await directory.authenticate("alice", PASSWORD)).ok


@pytest.mark.requirement("identity:passwords-never-stored-or-logged")
async def test_passwords_and_totp_secrets_are_never_stored_or_logged_in_the_clear(
    directory: UserDirectory, store: Store, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await directory.add_user("alice", PASSWORD, groups=["eng"])
    await directory.set_password("alice", OTHER)
    await directory.authenticate("alice", PASSWORD)
    await directory.authenticate("alice", OTHER)
    secret = await enrol(directory, clock)
    await directory.authenticate("alice", OTHER, code(secret, clock.now))
    dump = await raw_dump(store)
    key = decode_secret(secret)
    for clear in (PASSWORD, OTHER, secret, secret.lower(), key.decode("latin-1")):
        assert clear not in dump
        assert clear not in caplog.text
    assert "$argon2id$" in dump


# ---------------------------------------------------------------------------------------------- TOTP


async def test_an_enrolment_stays_pending_until_a_code_confirms_it(
    directory: UserDirectory, clock: ManualClock
) -> None:
    await directory.add_user("alice", PASSWORD)
    uri = await directory.begin_totp_enrolment("alice")
    assert uri.startswith("otpauth://totp/Portico:alice?secret=")
    assert (await directory.get_user("alice")).mfa == "pending"
    assert (await directory.authenticate("alice", PASSWORD)).amr == ("pwd",)  # pending asks for nothing yet
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    assert not await directory.confirm_totp("alice", code(secret, clock.now - 90))
    assert (await directory.get_user("alice")).mfa == "pending"
    assert await directory.confirm_totp("alice", code(secret, clock.now))
    assert (await directory.get_user("alice")).mfa == "active"


@pytest.mark.requirement("identity:totp-mfa")
async def test_with_totp_active_a_sign_in_needs_a_valid_code(directory: UserDirectory, clock: ManualClock) -> None:
    await directory.add_user("alice", PASSWORD, groups=["eng"])
    secret = await enrol(directory, clock)
    assert (await directory.authenticate("alice", PASSWORD)).failure is AuthFailure.MFA_REQUIRED
    assert (await directory.authenticate("alice", OTHER, code(secret, clock.now))).failure is (
        AuthFailure.BAD_CREDENTIALS
    )
    assert (await directory.authenticate("alice", PASSWORD, "000000")).failure is AuthFailure.BAD_OTP
    result = await directory.authenticate("alice", PASSWORD, code(secret, clock.now))
    assert result == AuthResult(subject="alice", groups=frozenset({"eng"}), amr=("pwd", "otp"))
    assert result.mfa


@pytest.mark.requirement("identity:totp-replay")
async def test_a_code_that_signed_in_once_is_refused_the_second_time(
    directory: UserDirectory, clock: ManualClock
) -> None:
    await directory.add_user("alice", PASSWORD)
    secret = await enrol(directory, clock)
    used = code(secret, clock.now)
    assert (await directory.authenticate("alice", PASSWORD, used)).ok
    clock.advance(20)
    assert (await directory.authenticate("alice", PASSWORD, used)).failure is AuthFailure.BAD_OTP
    clock.advance(10)
    assert (await directory.authenticate("alice", PASSWORD, code(secret, clock.now))).ok


async def test_the_code_that_confirmed_enrolment_cannot_sign_in(directory: UserDirectory, clock: ManualClock) -> None:
    await directory.add_user("alice", PASSWORD)
    uri = await directory.begin_totp_enrolment("alice")
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    confirming = code(secret, clock.now)
    assert await directory.confirm_totp("alice", confirming)
    assert (await directory.authenticate("alice", PASSWORD, confirming)).failure is AuthFailure.BAD_OTP


@pytest.mark.requirement("identity:totp-replay")
async def test_the_same_code_offered_twice_at_once_signs_in_only_once(
    directory: UserDirectory, clock: ManualClock
) -> None:
    await directory.add_user("alice", PASSWORD)
    secret = await enrol(directory, clock)
    used = code(secret, clock.now)
    results: list[AuthResult] = []

    async def attempt() -> None:
        results.append(await directory.authenticate("alice", PASSWORD, used))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(attempt)
    assert sorted(r.ok for r in results) == [False, False, False, True]
    assert {r.failure for r in results if not r.ok} == {AuthFailure.BAD_OTP}


@pytest.mark.parametrize(("offset_s", "ok"), [(-31, False), (-30, True), (0, True), (30, True), (60, False)])
async def test_a_code_one_step_early_or_late_still_signs_in(
    directory: UserDirectory, clock: ManualClock, offset_s: float, ok: bool
) -> None:
    await directory.add_user("alice", PASSWORD)
    secret = await enrol(directory, clock)  # now START + 30, at a step boundary
    clock.advance(60)
    assert (await directory.authenticate("alice", PASSWORD, code(secret, clock.now + offset_s))).ok is ok


async def test_wrong_codes_count_towards_the_lockout(directory: UserDirectory, clock: ManualClock) -> None:
    await directory.add_user("alice", PASSWORD)
    secret = await enrol(directory, clock)
    for _ in range(3):
        assert (await directory.authenticate("alice", PASSWORD, "123456")).failure is AuthFailure.BAD_OTP
    assert (await directory.authenticate("alice", PASSWORD, code(secret, clock.now))).failure is AuthFailure.LOCKED


async def test_a_new_enrolment_leaves_the_old_authenticator_working_until_confirmed(
    directory: UserDirectory, clock: ManualClock
) -> None:
    await directory.add_user("alice", PASSWORD)
    old = await enrol(directory, clock)
    uri = await directory.begin_totp_enrolment("alice")
    new = parse_qs(urlsplit(uri).query)["secret"][0]
    assert (await directory.get_user("alice")).mfa == "active"
    assert (await directory.authenticate("alice", PASSWORD, code(old, clock.now))).ok
    clock.advance(30)
    assert await directory.confirm_totp("alice", code(new, clock.now))
    clock.advance(30)
    assert (await directory.authenticate("alice", PASSWORD, code(old, clock.now))).failure is AuthFailure.BAD_OTP
    assert (await directory.authenticate("alice", PASSWORD, code(new, clock.now))).ok


async def test_restarting_an_enrolment_replaces_the_pending_secret(
    directory: UserDirectory, clock: ManualClock
) -> None:
    await directory.add_user("alice", PASSWORD)
    first = parse_qs(urlsplit(await directory.begin_totp_enrolment("alice")).query)["secret"][0]
    second = parse_qs(urlsplit(await directory.begin_totp_enrolment("alice")).query)["secret"][0]
    assert first != second
    assert not await directory.confirm_totp("alice", code(first, clock.now))
    assert await directory.confirm_totp("alice", code(second, clock.now))


async def test_confirming_without_an_enrolment_is_an_error(directory: UserDirectory) -> None:
    await directory.add_user("alice", PASSWORD)
    with pytest.raises(TotpEnrolmentError):
        await directory.confirm_totp("alice", "123456")


async def test_removing_totp_goes_back_to_the_password_alone(directory: UserDirectory, clock: ManualClock) -> None:
    await directory.add_user("alice", PASSWORD)
    await enrol(directory, clock)
    await directory.remove_totp("alice")
    assert (await directory.get_user("alice")).mfa == "none"
    assert (await directory.authenticate("alice", PASSWORD)).amr == ("pwd",)


@pytest.mark.requirement("identity:totp-encrypted-at-rest")
async def test_a_totp_secret_is_sealed_with_the_vault_key_and_bound_to_its_user(
    directory: UserDirectory, store: Store, vault: Vault, clock: ManualClock
) -> None:
    await directory.add_user("alice", PASSWORD)
    await directory.add_user("bob", PASSWORD)
    alice = await enrol(directory, clock)
    await enrol(directory, clock, "bob")
    async with store.engine.connect() as conn:
        rows = {r.user_id: r for r in (await conn.execute(user_totp.select())).all()}
        ids = dict((await conn.execute(text("SELECT username, id FROM users"))).all())
    assert {r.key_id for r in rows.values()} == {vault.key_id}
    # Alice's envelope copied into Bob's row does not open as Bob's: the sign-in fails closed.
    stolen = rows[ids["alice"]]
    async with store.engine.begin() as conn:
        await conn.execute(
            update(user_totp)
            .where(user_totp.c.user_id == ids["bob"])
            .values(key_id=stolen.key_id, nonce=stolen.nonce, ciphertext=stolen.ciphertext)
        )
    with pytest.raises(SecretIntegrityError):
        await directory.authenticate("bob", PASSWORD, code(alice, clock.now))


async def test_totp_secrets_follow_a_vault_key_rotation(
    store: Store, vault: Vault, fast_hasher: PasswordHasher, clock: ManualClock, vault_key: str, tmp_path: Any
) -> None:
    directory = UserDirectory(store, vault, hasher=fast_hasher, clock=clock)
    await directory.add_user("alice", PASSWORD)
    secret = await enrol(directory, clock)
    new_key = base64.b64encode(bytes(range(32))).decode()
    await vault.rotate(parse_key(new_key, "test"))
    assert await directory.reseal_totp_secrets() == 1
    assert await directory.reseal_totp_secrets() == 0
    only_new = Vault(store, VaultSettings(key_file=tmp_path / "unused.key"), env={"PORTICO_VAULT_KEY": new_key})
    after = UserDirectory(store, only_new, hasher=fast_hasher, clock=clock)
    assert (await after.authenticate("alice", PASSWORD, code(secret, clock.now))).amr == ("pwd", "otp")


async def test_the_failure_counter_is_one_atomic_update(directory: UserDirectory, store: Store) -> None:
    await directory.add_user("alice", PASSWORD)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(directory.authenticate, "alice", OTHER)
    async with store.engine.connect() as conn:
        assert (await conn.execute(users.select())).one().failed_logins == 2

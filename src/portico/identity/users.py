"""`UserDirectory`: Portico's local accounts, groups and TOTP second factors, in the shared store.

Sits below the embedded authorization server's login page and the `portico user` CLI; above the store
(`user_tables`), the vault's envelope crypto (TOTP secrets at rest) and the pure cores `passwords` and `totp`.

Signing in (`authenticate`) answers with an `AuthResult`: who, their groups and how they proved it (`amr`:
`pwd`, then `otp`), or one typed `AuthFailure`. The order of checks is chosen so that answers reveal as little
as possible:

    1. locked out?              LOCKED            (no password work: refusing is cheap while under attack)
    2. password right?          BAD_CREDENTIALS   (an unknown username costs the same Argon2id work and gives
                                                   the same answer; the failure counter update runs either way)
    3. account disabled?        DISABLED          (only told to someone who knows the password)
    4. TOTP active, no code?    MFA_REQUIRED      (the form then asks for the code)
    5. code valid and fresh?    BAD_OTP           (a wrong or replayed code counts as a failed attempt)

`max_failed_logins` consecutive failures (passwords and codes alike) lock the account for `lockout_s` and
start the count afresh; a success resets it. A LOCKED answer does tell whoever caused the lockout that the
account exists: the price of telling a real user why they cannot sign in. Per-address rate limits (a later
issue) blunt that probe.

Errors, under `PorticoError` (never raised by `authenticate` for anything a client sends):

    UserError                       the directory cannot do what was asked (also: the database failed)
    ├── UserNotFoundError             no such username
    ├── UserExistsError               the username or subject is taken
    ├── UsernameError                 a username, subject or group name of the wrong shape (also ValueError)
    └── WeakPasswordError             the new password breaks the policy; `problem` says how (also ValueError)
    TotpEnrolmentError              confirming a TOTP enrolment that was never begun (`portico.identity.totp`)

Password hashing runs in worker threads, at most `max_concurrent_hashes` at once, never on the event loop.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import anyio
import anyio.to_thread
from sqlalchemy import and_, case, delete, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from portico.errors import PorticoError
from portico.identity import totp
from portico.identity.passwords import MIN_PASSWORD_CHARS, PasswordHasher, PasswordProblem, check_password
from portico.identity.settings import LocalUserSettings
from portico.identity.user_tables import group_members, groups, user_totp, users
from portico.store.db import Store
from portico.vault import Vault
from portico.vault.model import shown

USERNAME = re.compile(r"[a-z0-9][a-z0-9._@+-]{0,127}")
GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SUBJECT = re.compile(r"[!-~]{1,255}")  # printable ASCII, no spaces: it appears in tokens, policy and logs

MfaState = Literal["none", "pending", "active"]
Clock = Callable[[], float]  # Unix seconds, like `time.time` (the same shape as `portico.identity.keys.Clock`)


class UserError(PorticoError):
    """The user directory cannot do what was asked. `public` never holds a password or a TOTP secret."""

    default_public = "User directory error"


class UserNotFoundError(UserError):
    default_public = "No such user"


class UserExistsError(UserError):
    default_public = "A user with that username or subject already exists"


class UsernameError(UserError, ValueError):
    default_public = "Invalid username, subject or group name"


class WeakPasswordError(UserError, ValueError):
    """The password breaks the policy; `problem` is the typed reason."""

    default_public = "Password refused"

    def __init__(self, problem: PasswordProblem, min_chars: int = MIN_PASSWORD_CHARS) -> None:
        super().__init__(problem.describe(min_chars))
        self.problem = problem


class AuthFailure(enum.StrEnum):
    """Why a sign-in was refused. The value is a stable code for the audit log; `public` is for the person."""

    BAD_CREDENTIALS = "bad_credentials"  # unknown username or wrong password: deliberately one answer
    LOCKED = "locked"
    DISABLED = "disabled"
    MFA_REQUIRED = "mfa_required"
    BAD_OTP = "bad_otp"

    @property
    def public(self) -> str:
        """What the sign-in page may show."""
        return _PUBLIC[self]


_PUBLIC = {
    AuthFailure.BAD_CREDENTIALS: "Invalid username or password",
    AuthFailure.LOCKED: "Too many failed sign-in attempts: try again later",
    AuthFailure.DISABLED: "This account is disabled",
    AuthFailure.MFA_REQUIRED: "Enter the code from your authenticator app",
    AuthFailure.BAD_OTP: "Invalid or already used authentication code",
}


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of one sign-in: on success `subject`, `groups`, `amr` (RFC 8176 values); else `failure`."""

    subject: str | None = None
    groups: frozenset[str] = frozenset()
    amr: tuple[str, ...] = ()
    failure: AuthFailure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def mfa(self) -> bool:
        """Signed in with a second factor (what policy's `mfa: true` asks for)."""
        return "otp" in self.amr


@dataclass(frozen=True, slots=True)
class User:
    """One local account as listed: never its password hash or TOTP secret."""

    subject: str
    username: str
    display_name: str | None
    disabled: bool
    locked_until: datetime | None
    mfa: MfaState
    groups: frozenset[str]
    created_at: datetime
    updated_at: datetime


class UserDirectory:
    """Local users, groups and TOTP in Portico's store. Safe to share between tasks.

    `vault` supplies the keys TOTP secrets are sealed with (its current key seals; any configured key opens).
    `hasher` defaults to the documented Argon2id parameters; `clock` (Unix seconds) to `time.time`.
    """

    def __init__(
        self,
        store: Store,
        vault: Vault,
        settings: LocalUserSettings | None = None,
        *,
        hasher: PasswordHasher | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.vault = vault
        self.settings = settings or LocalUserSettings()
        self.hasher = hasher or PasswordHasher()
        self._clock: Clock = clock or time.time
        self._limiter: anyio.CapacityLimiter | None = None

    def __repr__(self) -> str:
        return f"UserDirectory({self.store!r})"

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # ---------------------------------------------------------------------------------------- accounts

    async def add_user(
        self,
        username: str,
        password: str,
        *,
        display_name: str | None = None,
        groups: Iterable[str] = (),
        subject: str | None = None,
    ) -> User:
        """Create an account (lowercase username; subject defaults to it) with `password`, in `groups`.

        Raises:
            UsernameError: the username, subject or a group name has the wrong shape.
            WeakPasswordError: the password breaks the policy.
            UserExistsError: the username or subject is taken.
            UserError: the database failed.
        """
        name = _username(username)
        subject = _subject(subject if subject is not None else name)
        wanted = sorted({_group(g) for g in groups})
        password_hash = await self._hash_new(password, name)
        now = self._now()
        row = {
            "subject": subject,
            "username": name,
            "display_name": display_name,
            "password_hash": password_hash,
            "disabled": False,
            "failed_logins": 0,
            "locked_until": None,
            "created_at": now,
            "updated_at": now,
        }
        async with self._connect(write=True, inserting_user=True) as conn:
            user_id = (await conn.execute(users.insert().values(row).returning(users.c.id))).scalar_one()
            for group in wanted:
                await self._join(conn, user_id, group, now)
        return await self.get_user(name)

    async def get_user(self, username: str) -> User:
        """The account `username`.

        Raises:
            UsernameError, UserNotFoundError, UserError (database).
        """
        name = _username(username)
        found = await self._users(users.c.username == name)
        if not found:
            raise UserNotFoundError(f"No user {shown(name)}")
        return found[0]

    async def list_users(self) -> tuple[User, ...]:
        """Every account, by username.

        Raises:
            UserError: the database failed.
        """
        return await self._users(None)

    async def set_password(self, username: str, password: str) -> None:
        """Replace the password, and lift any lockout.

        Raises:
            UsernameError, WeakPasswordError, UserNotFoundError, UserError (database).
        """
        name = _username(username)
        password_hash = await self._hash_new(password, name)
        await self._update(name, password_hash=password_hash, failed_logins=0, locked_until=None)

    async def disable_user(self, username: str) -> None:
        """Refuse every further sign-in of this account (tokens already issued are the token layer's concern).

        Raises:
            UsernameError, UserNotFoundError, UserError (database).
        """
        await self._update(_username(username), disabled=True)

    async def enable_user(self, username: str) -> None:
        """Allow sign-ins again, and lift any lockout.

        Raises:
            UsernameError, UserNotFoundError, UserError (database).
        """
        await self._update(_username(username), disabled=False, failed_logins=0, locked_until=None)

    # ------------------------------------------------------------------------------------------ groups

    async def add_to_group(self, username: str, group: str) -> None:
        """Make the user a member of `group` (created on first use). Adding twice is not an error.

        Raises:
            UsernameError, UserNotFoundError, UserError (database).
        """
        name, group = _username(username), _group(group)
        async with self._connect(write=True) as conn:
            await self._join(conn, (await _user_ref(conn, name))[0], group, self._now())

    async def remove_from_group(self, username: str, group: str) -> None:
        """End the user's membership of `group` (not an error if there was none).

        Raises:
            UsernameError, UserNotFoundError, UserError (database).
        """
        name, group = _username(username), _group(group)
        async with self._connect(write=True) as conn:
            user_id, _ = await _user_ref(conn, name)
            await conn.execute(
                delete(group_members).where(group_members.c.user_id == user_id, group_members.c.group_name == group)
            )

    async def groups_of(self, username: str) -> frozenset[str]:
        """The groups the user belongs to.

        Raises:
            UsernameError, UserNotFoundError, UserError (database).
        """
        return (await self.get_user(username)).groups

    async def list_groups(self) -> dict[str, int]:
        """Every group that has ever had a member, with its current member count, by name.

        Raises:
            UserError: the database failed.
        """
        query = (
            select(groups.c.name, func.count(group_members.c.user_id))
            .select_from(groups.outerjoin(group_members, group_members.c.group_name == groups.c.name))
            .group_by(groups.c.name)
            .order_by(groups.c.name)
        )
        async with self._connect() as conn:
            return {name: int(count) for name, count in (await conn.execute(query)).all()}

    # -------------------------------------------------------------------------------------------- TOTP

    async def begin_totp_enrolment(self, username: str) -> str:
        """Start (or restart) TOTP enrolment with a fresh secret and return its `otpauth://` provisioning URI.

        The secret stays pending, and sign-in keeps its current requirement (password only, or the previous
        authenticator), until `confirm_totp` sees a valid code from it. The URI holds the secret: show it to
        the enrolling user only.

        Raises:
            UsernameError, UserNotFoundError.
            VaultKeyError: no usable vault key.
            UserError: the database failed.
        """
        name = _username(username)
        async with self._connect(write=True) as conn:
            user_id, subject = await _user_ref(conn, name)
            secret = await totp.begin_enrolment(conn, self.vault.keyring(), user_id, subject, self._clock())
        return totp.provisioning_uri(secret, name, self.settings.totp_issuer)

    async def confirm_totp(self, username: str, code: str) -> bool:
        """Activate the pending TOTP secret if `code` is valid for it now (replacing any active one). Returns
        False, changing nothing, for a wrong code. The accepted code cannot then be used to sign in.

        Raises:
            UsernameError, UserNotFoundError.
            TotpEnrolmentError: no enrolment is pending.
            VaultKeyError, SecretIntegrityError: the pending secret cannot be opened.
            UserError: the database failed.
        """
        async with self._connect(write=True) as conn:
            user_id, subject = await _user_ref(conn, _username(username))
            keys = self.vault.keyring(create=False)
            return await totp.confirm_enrolment(conn, keys, user_id, subject, code, self._clock())

    async def remove_totp(self, username: str) -> None:
        """Remove the user's TOTP (active and pending): a lost authenticator. They sign in with a password only.

        Raises:
            UsernameError, UserNotFoundError, UserError (database).
        """
        async with self._connect(write=True) as conn:
            user_id, _ = await _user_ref(conn, _username(username))
            await totp.remove_enrolments(conn, user_id)

    async def reseal_totp_secrets(self) -> int:
        """Re-seal every TOTP secret not under the vault's current key with it (after `Vault.rotate`), in one
        transaction. Returns how many were re-sealed.

        Raises:
            VaultKeyError, SecretIntegrityError: a secret cannot be opened (nothing changes).
            UserError: the database failed (nothing changes).
        """
        keys = self.vault.keyring(create=False)
        async with self._connect(write=True) as conn:
            return await totp.reseal_all(conn, keys)

    # ---------------------------------------------------------------------------------------- sign-in

    async def authenticate(self, username: str, password: str, totp_code: str | None = None) -> AuthResult:
        """Check a sign-in (see the module docstring for the order of checks and what each answer reveals).

        Never raises for anything the client sends: a malformed username is an unknown one.

        Raises:
            VaultKeyError, SecretIntegrityError: the user's TOTP secret cannot be opened (fails closed).
            UserError: the database failed.
        """
        name = username.lower() if USERNAME.fullmatch(username.lower()) else None
        now = self._now()
        query = (
            select(users, user_totp.c.key_id, user_totp.c.nonce, user_totp.c.ciphertext, user_totp.c.last_step)
            .select_from(
                users.outerjoin(user_totp, and_(user_totp.c.user_id == users.c.id, user_totp.c.state == "active"))
            )
            .where(users.c.username == (name or ""))
        )
        async with self._connect() as conn:
            row = (await conn.execute(query)).one_or_none()

        if row is not None and row.locked_until is not None and _utc(row.locked_until) > now:
            return AuthResult(failure=AuthFailure.LOCKED)
        if row is None:
            await self._run_hash(self.hasher.dummy_verify, password)
            return await self._refuse(name, AuthFailure.BAD_CREDENTIALS, now)
        if not await self._run_hash(self.hasher.verify, row.password_hash, password):
            return await self._refuse(name, AuthFailure.BAD_CREDENTIALS, now)
        if row.disabled:
            return AuthResult(failure=AuthFailure.DISABLED)
        amr: tuple[str, ...] = ("pwd",)
        if row.ciphertext is not None:
            if totp_code is None:
                return AuthResult(failure=AuthFailure.MFA_REQUIRED)
            async with self._connect(write=True) as conn:
                keys = self.vault.keyring(create=False)
                accepted = await totp.accept_code(conn, keys, row.id, row.subject, row, totp_code, now.timestamp())
            if not accepted:
                return await self._refuse(name, AuthFailure.BAD_OTP, now)
            amr = ("pwd", "otp")
        return AuthResult(subject=row.subject, groups=await self._succeeded(row, password), amr=amr)

    # ---------------------------------------------------------------------------------------- private

    async def _refuse(self, username: str | None, failure: AuthFailure, now: datetime) -> AuthResult:
        """Count one more consecutive failure (at the limit: lock the account and count afresh) and refuse.

        The same statement runs for an unknown username (it matches no row), so the two cost the same.
        """
        if username is not None:
            limit = self.settings.max_failed_logins
            reached = users.c.failed_logins + 1 >= limit
            until = literal(now + timedelta(seconds=self.settings.lockout_s), users.c.locked_until.type)
            statement = (
                update(users)
                .where(users.c.username == username)
                .values(
                    failed_logins=case((reached, 0), else_=users.c.failed_logins + 1),
                    locked_until=case((reached, until), else_=users.c.locked_until),
                )
            )
            async with self._connect(write=True) as conn:
                await conn.execute(statement)
        return AuthResult(failure=failure)

    async def _succeeded(self, row: Any, password: str) -> frozenset[str]:
        """Reset the failure count, upgrade a hash made with outdated parameters, and read the user's groups."""
        rehashed: str | None = None
        if self.hasher.needs_rehash(row.password_hash):
            rehashed = await self._run_hash(self.hasher.hash, password)
        async with self._connect(write=True) as conn:
            if row.failed_logins or row.locked_until is not None:
                await conn.execute(update(users).where(users.c.id == row.id).values(failed_logins=0, locked_until=None))
            if rehashed is not None:
                # Guarded by the old hash: a password set meanwhile (set_password) is never overwritten.
                await conn.execute(
                    update(users)
                    .where(users.c.id == row.id, users.c.password_hash == row.password_hash)
                    .values(password_hash=rehashed)
                )
            member = select(group_members.c.group_name).where(group_members.c.user_id == row.id)
            return frozenset((await conn.execute(member)).scalars())

    async def _hash_new(self, password: str, username: str) -> str:
        problem = check_password(password, username, min_chars=self.settings.min_password_chars)
        if problem is not None:
            raise WeakPasswordError(problem, self.settings.min_password_chars)
        hashed: str = await self._run_hash(self.hasher.hash, password)
        return hashed

    async def _run_hash(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run Argon2 off the event loop, at most `max_concurrent_hashes` at once (each holds ~46 MiB)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.settings.max_concurrent_hashes)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def _update(self, username: str, **values: Any) -> None:
        async with self._connect(write=True) as conn:
            result = await conn.execute(
                update(users).where(users.c.username == username).values(updated_at=self._now(), **values)
            )
        if result.rowcount == 0:
            raise UserNotFoundError(f"No user {shown(username)}")

    async def _join(self, conn: AsyncConnection, user_id: int, group: str, now: datetime) -> None:
        insert = postgresql.insert if self.store.dialect == "postgresql" else sqlite.insert
        await conn.execute(insert(groups).values(name=group, created_at=now).on_conflict_do_nothing())
        await conn.execute(insert(group_members).values(user_id=user_id, group_name=group).on_conflict_do_nothing())

    async def _users(self, where: Any) -> tuple[User, ...]:
        user_query = select(users).order_by(users.c.username)
        ids = select(users.c.id)
        if where is not None:
            user_query, ids = user_query.where(where), ids.where(where)
        async with self._connect() as conn:
            rows = (await conn.execute(user_query)).all()
            members = (await conn.execute(select(group_members).where(group_members.c.user_id.in_(ids)))).all()
            totp_query = select(user_totp.c.user_id, user_totp.c.state).where(user_totp.c.user_id.in_(ids))
            totp_states = (await conn.execute(totp_query)).all()
        member_of: dict[int, set[str]] = {}
        for m in members:
            member_of.setdefault(m.user_id, set()).add(m.group_name)
        states: dict[int, set[str]] = {}
        for t in totp_states:
            states.setdefault(t.user_id, set()).add(t.state)
        return tuple(
            User(
                subject=r.subject,
                username=r.username,
                display_name=r.display_name,
                disabled=bool(r.disabled),
                locked_until=_utc(r.locked_until) if r.locked_until is not None else None,
                mfa=_mfa_state(states.get(r.id, set())),
                groups=frozenset(member_of.get(r.id, set())),
                created_at=_utc(r.created_at),
                updated_at=_utc(r.updated_at),
            )
            for r in rows
        )

    @asynccontextmanager
    async def _connect(self, *, write: bool = False, inserting_user: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection (a transaction when `write`): the one place database errors become `UserError`.

        With `inserting_user`, a constraint violation means the username or subject is taken (memberships are
        inserted "or do nothing", so they never violate one).
        """
        try:
            async with self.store.engine.begin() if write else self.store.engine.connect() as conn:
                yield conn
        except IntegrityError as exc:
            if inserting_user:
                raise UserExistsError(detail=_describe(exc)) from exc
            raise UserError("User directory unavailable", detail=_describe(exc)) from exc
        except (SQLAlchemyError, OSError) as exc:  # asyncpg raises plain OSError when it cannot connect
            raise UserError("User directory unavailable", detail=_describe(exc)) from exc


async def _user_ref(conn: AsyncConnection, username: str) -> tuple[int, str]:
    row = (await conn.execute(select(users.c.id, users.c.subject).where(users.c.username == username))).one_or_none()
    if row is None:
        raise UserNotFoundError(f"No user {shown(username)}")
    return int(row.id), str(row.subject)


def _mfa_state(states: set[str]) -> MfaState:
    return "active" if "active" in states else "pending" if "pending" in states else "none"


def _username(username: str) -> str:
    name = username.lower()
    if USERNAME.fullmatch(name) is None:
        raise UsernameError(
            f"Invalid username {shown(username)}: use lowercase letters, digits, '.', '_', '@', '+' or '-' "
            "(at most 128, starting with a letter or digit)"
        )
    return name


def _subject(subject: str) -> str:
    if SUBJECT.fullmatch(subject) is None:
        raise UsernameError(f"Invalid subject {shown(subject)}: printable ASCII without spaces, at most 255")
    return subject


def _group(group: str) -> str:
    if GROUP.fullmatch(group) is None:
        raise UsernameError(f"Invalid group name {shown(group)}: use letters, digits, '.', '_' or '-' (at most 64)")
    return group


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite returns naive datetimes


def _describe(exc: SQLAlchemyError | OSError) -> str:
    """The driver's own message (the engine hides parameters, so no hash or secret is in it)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}"
    return f"{type(exc).__name__}: {exc}"

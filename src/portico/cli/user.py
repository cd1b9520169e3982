"""`portico user …`: local accounts, their groups and their TOTP second factor.

A thin layer over `portico.identity.users.UserDirectory`, on the database and vault keys named by `--config`.
A password is never taken from the command line (it would sit in shell history and `ps`): it is read from a
hidden prompt on a terminal, else from standard input (one line). Listings are tab-separated, one line per
item, for people and for `cut`. Exit codes: 0 success, 1 no such user (or a TOTP code refused), 2 the
input, config, database or keys cannot be used.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from portico.cli.common import run_with_store
from portico.config import Settings
from portico.config import load as load_config
from portico.errors import PorticoError
from portico.identity.authserver.grants import GrantStore
from portico.identity.totp import TotpEnrolmentError
from portico.identity.users import User, UserDirectory, UserNotFoundError
from portico.store.db import Store
from portico.store.settings import StoreSettings
from portico.vault import Vault

T = TypeVar("T")
_CONTROL = {c: "\ufffd" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}

app = typer.Typer(help="Manage local users, their groups and their TOTP second factor.", no_args_is_help=True)
totp_app = typer.Typer(help="Enrol, confirm or remove a user's TOTP authenticator.", no_args_is_help=True)
app.add_typer(totp_app, name="totp")
err = Console(stderr=True, highlight=False)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="portico.yaml whose store and vault to use.")]
UsernameArgument = Annotated[str, typer.Argument(help="The user's sign-in name (case-insensitive).")]
# Stray arguments are collected rather than left to Click, whose usage error would print a pasted password.
_NO_ARGV_SECRETS = {"allow_extra_args": True, "ignore_unknown_options": True}


class _CodeRefusedError(PorticoError):
    default_public = "That code is not valid for the pending secret (is the device's clock right?)"


@app.command("add", context_settings=_NO_ARGV_SECRETS)
def add_command(
    ctx: typer.Context,
    config: ConfigOption,
    username: UsernameArgument,
    group: Annotated[list[str] | None, typer.Option("--group", "-g", help="A group to join (repeatable).")] = None,
    display_name: Annotated[str | None, typer.Option(help="The name shown for the user.")] = None,
) -> None:
    """Create a user; the password is read from a hidden prompt or standard input."""
    password = _read_password(ctx, username)

    async def run(users: UserDirectory) -> User:
        return await users.add_user(username, password, display_name=display_name, groups=group or ())

    user = _with_users(config, run, migrate=True)
    joined = f" in {', '.join(sorted(user.groups))}" if user.groups else ""
    err.print(f"added user {escape(user.username)}{escape(joined)}")


@app.command("passwd", context_settings=_NO_ARGV_SECRETS)
def passwd_command(ctx: typer.Context, config: ConfigOption, username: UsernameArgument) -> None:
    """Set a user's password (read from a hidden prompt or standard input); lifts a lockout."""
    password = _read_password(ctx, username)

    async def run(users: UserDirectory) -> None:
        await users.set_password(username, password)

    _with_users(config, run)
    err.print(f"password changed for {escape(username.lower())}")


@app.command("list")
def list_command(config: ConfigOption) -> None:
    """List users: username, subject, state (active, disabled, locked), TOTP (none, pending, active), groups."""

    async def run(users: UserDirectory) -> tuple[User, ...]:
        return await users.list_users()

    now = datetime.now(UTC)
    for user in _with_users(config, run):
        locked = user.locked_until is not None and user.locked_until > now
        state = "disabled" if user.disabled else "locked" if locked else "active"
        groups = ",".join(sorted(user.groups)) or "-"
        name = (user.display_name or "").translate(_CONTROL)
        sys.stdout.write(f"{user.username}\t{user.subject}\t{state}\t{user.mfa}\t{groups}\t{name}\n")


@app.command("groups")
def groups_command(
    config: ConfigOption,
    username: Annotated[str | None, typer.Argument(help="Only this user's groups.")] = None,
) -> None:
    """List groups with their member counts, or (given a username) that user's groups."""

    async def run(users: UserDirectory) -> list[str]:
        if username is not None:
            return sorted(await users.groups_of(username))
        return [f"{name}\t{count}" for name, count in (await users.list_groups()).items()]

    for line in _with_users(config, run):
        sys.stdout.write(line + "\n")


@app.command("add-group")
def add_group_command(
    config: ConfigOption,
    username: UsernameArgument,
    groups: Annotated[list[str], typer.Argument(help="Groups to join (created on first use).")],
) -> None:
    """Add a user to one or more groups."""

    async def run(users: UserDirectory) -> None:
        for group in groups:
            await users.add_to_group(username, group)

    _with_users(config, run)
    err.print(f"{escape(username.lower())} is in {escape(', '.join(groups))}")


@app.command("remove-group")
def remove_group_command(
    config: ConfigOption,
    username: UsernameArgument,
    groups: Annotated[list[str], typer.Argument(help="Groups to leave.")],
) -> None:
    """Remove a user from one or more groups."""

    async def run(users: UserDirectory) -> None:
        for group in groups:
            await users.remove_from_group(username, group)

    _with_users(config, run)
    err.print(f"{escape(username.lower())} left {escape(', '.join(groups))}")


@app.command("disable")
def disable_command(config: ConfigOption, username: UsernameArgument) -> None:
    """Refuse every further sign-in of a user and revoke their tokens (Portico stops accepting them within
    seconds)."""

    async def run(users: UserDirectory) -> int:
        await users.disable_user(username)
        subject = (await users.get_user(username)).subject
        return len(await GrantStore(users.store).revoke_subject(subject, datetime.now(UTC)))

    revoked = _with_users(config, run)
    err.print(f"disabled {escape(username)}; {revoked} live access token(s) revoked, refresh tokens ended")
    err.print(f"disabled {escape(username.lower())}")


@app.command("enable")
def enable_command(config: ConfigOption, username: UsernameArgument) -> None:
    """Allow a disabled or locked-out user to sign in again."""

    async def run(users: UserDirectory) -> None:
        await users.enable_user(username)

    _with_users(config, run)
    err.print(f"enabled {escape(username.lower())}")


@totp_app.command("enrol")
def totp_enrol_command(config: ConfigOption, username: UsernameArgument) -> None:
    """Begin TOTP enrolment: print the otpauth:// URI for the user's authenticator app (it holds the secret)."""

    async def run(users: UserDirectory) -> str:
        return await users.begin_totp_enrolment(username)

    sys.stdout.write(_with_users(config, run) + "\n")
    err.print(f"then: portico user totp confirm {escape(username.lower())} CODE (a code from the app)")


@totp_app.command("confirm")
def totp_confirm_command(
    config: ConfigOption,
    username: UsernameArgument,
    code: Annotated[str, typer.Argument(help="The 6-digit code the authenticator app shows now.")],
) -> None:
    """Activate the pending TOTP secret with a current code from the app; sign-ins then need a code."""

    async def run(users: UserDirectory) -> None:
        if not await users.confirm_totp(username, code):
            raise _CodeRefusedError

    _with_users(config, run)
    err.print(f"TOTP active for {escape(username.lower())}")


@totp_app.command("remove")
def totp_remove_command(config: ConfigOption, username: UsernameArgument) -> None:
    """Remove a user's TOTP (a lost device): sign-ins then need only the password, until a new enrolment."""

    async def run(users: UserDirectory) -> None:
        await users.remove_totp(username)

    _with_users(config, run)
    err.print(f"TOTP removed for {escape(username.lower())}")


def _read_password(ctx: typer.Context, username: str) -> str:
    """The new password: a hidden prompt (typed twice) on a terminal, else one line of standard input."""
    if ctx.args:
        err.print("error: a password is never taken from the command line: pipe it on stdin or type it at the prompt")
        raise typer.Exit(2)
    if sys.stdin.isatty():
        password: str = typer.prompt(f"Password for {username}", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if "\n" in password or "\r" in password:
        err.print("error: the password must be a single line")
        raise typer.Exit(2)
    return password


def _with_users(config: Path, body: Callable[[UserDirectory], Awaitable[T]], *, migrate: bool = False) -> T:
    """Open the store, vault and user directory of `config` and run `body`; "no such user" exits 1, other errors
    2."""
    loaded: list[Settings] = []

    def store_settings() -> StoreSettings:
        loaded.append(load_config(config))
        return loaded[0].store

    async def with_users(store: Store) -> T:
        settings = loaded[0]
        return await body(UserDirectory(store, Vault(store, settings.vault), settings.identity.users))

    return run_with_store(
        store_settings, with_users, migrate=migrate, exit_1=(UserNotFoundError, TotpEnrolmentError, _CodeRefusedError)
    )

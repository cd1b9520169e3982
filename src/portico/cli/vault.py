"""`portico vault …`: store, reveal, list, delete and rotate upstream credentials.

A thin layer over `portico.vault.Vault`, on the database and keys named by `--config` (its `store:` and
`vault:` sections; keys from the environment as configured). A value is never taken from the command line
(it would sit in shell history and `ps`): `set` reads it from standard input, or from a hidden prompt on a
terminal. `get` prints a value only with `--reveal`. Exit codes: 0 success, 1 no such secret, 2 the config,
database or keys cannot be used.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from portico.cli.common import run_with_store
from portico.config import Settings
from portico.config import load as load_config
from portico.errors import ConfigError
from portico.identity.users import UserDirectory
from portico.store.db import Store
from portico.store.settings import StoreSettings
from portico.vault import SecretEntry, SecretNotFoundError, Vault, VaultSettings
from portico.vault.crypto import parse_key
from portico.vault.keys import read_key_file

T = TypeVar("T")
_CONTROL = {c: "\ufffd" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}

app = typer.Typer(help="Manage upstream credentials in the encrypted vault.", no_args_is_help=True)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="portico.yaml whose store and vault to use.")]
ScopeArgument = Annotated[str, typer.Argument(help="server:<server id>, or user:<subject>:server:<server id>.")]
NameArgument = Annotated[str, typer.Argument(help="Secret name, as written in ${vault:NAME}.")]


# Stray arguments are collected rather than left to Click, whose usage error would print a pasted value back.
@app.command("set", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def set_command(ctx: typer.Context, config: ConfigOption, scope: ScopeArgument, name: NameArgument) -> None:
    """Store a secret, read from standard input (one trailing newline dropped) or a hidden prompt."""
    if ctx.args:
        err.print("error: a value is never taken from the command line: pipe it on stdin or type it at the prompt")
        raise typer.Exit(2)
    if sys.stdin.isatty():
        value = typer.prompt(f"Value of {name}", hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.read()
        value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        err.print("error: refusing to store an empty secret", markup=False)
        raise typer.Exit(2)

    async def run(vault: Vault) -> None:
        await vault.put(scope, name, value)

    _with_vault(config, run, migrate=True)
    err.print(f"stored {escape(name)} in {escape(scope)}")


@app.command("get")
def get_command(
    config: ConfigOption,
    scope: ScopeArgument,
    name: NameArgument,
    reveal: Annotated[bool, typer.Option("--reveal", help="Print the value to standard output.")] = False,
) -> None:
    """Print a secret's value to standard output (requires --reveal)."""
    if not reveal:
        err.print("error: add --reveal to print a secret's value to standard output", markup=False)
        raise typer.Exit(2)

    async def run(vault: Vault) -> str:
        return await vault.get(scope, name)

    value = _with_vault(config, run)
    sys.stdout.write(value + "\n")


@app.command("list")
def list_command(
    config: ConfigOption,
    scope_prefix: Annotated[str, typer.Argument(help="Only scopes starting with this (e.g. server:github).")] = "",
) -> None:
    """List stored secrets, one per line: scope, name, key id, last change (UTC). Never their values."""

    async def run(vault: Vault) -> tuple[SecretEntry, ...]:
        return await vault.list(scope_prefix)

    for entry in _with_vault(config, run):
        stamp = entry.updated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # One tab-separated line per secret, for people and for `cut`; no wrapping, no markup.
        sys.stdout.write(f"{entry.scope.translate(_CONTROL)}\t{entry.name}\t{entry.key_id}\t{stamp}\n")


@app.command("delete")
def delete_command(config: ConfigOption, scope: ScopeArgument, name: NameArgument) -> None:
    """Remove a secret."""

    async def run(vault: Vault) -> None:
        await vault.delete(scope, name)

    _with_vault(config, run)
    err.print(f"deleted {escape(name)} from {escape(scope)}")


@app.command("rotate")
def rotate_command(
    config: ConfigOption,
    new_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the new key (base64 of 32 bytes).")
    ] = "PORTICO_VAULT_NEW_KEY",
    new_key_file: Annotated[
        Path | None, typer.Option(help="File holding the new key, instead of the environment variable.")
    ] = None,
) -> None:
    """Re-encrypt every secret under a new key (one transaction) and print how many were re-encrypted."""

    async def run(vault: Vault) -> tuple[int, str, str]:
        old = vault.keyring(create=False).current.id
        if new_key_file is not None:
            new_key = read_key_file(new_key_file)
        else:
            if not os.environ.get(new_key_env):
                raise ConfigError(f"Set ${new_key_env} to the new key (or give --new-key-file)")
            new_key = parse_key(os.environ[new_key_env], f"${new_key_env}")
        count = await vault.rotate(new_key)
        # TOTP secrets are sealed with the vault's keys outside its table: move them to the new key too.
        count += await UserDirectory(vault.store, vault).reseal_totp_secrets()
        return count, old, new_key.id

    count, old, new = _with_vault(config, run)
    out.print(f"re-encrypted {count} secrets under key {new}")
    vault_settings = _vault_settings(config)
    err.print(
        f"next: make the new key current (${vault_settings.key_env} or vault.key_file) and keep key {old} in "
        f"${vault_settings.previous_keys_env} until every Portico replica has restarted with the new key",
        markup=False,
    )


def _with_vault(config: Path, body: Callable[[Vault], Awaitable[T]], *, migrate: bool = False) -> T:
    """Open the store and vault of `config`, run `body(vault)`; a missing secret exits 1, other errors 2."""
    settings: list[Settings] = []

    def store_settings() -> StoreSettings:
        settings.append(load_config(config))
        return settings[0].store

    async def with_vault(store: Store) -> T:
        return await body(Vault(store, settings[0].vault))

    return run_with_store(store_settings, with_vault, migrate=migrate, exit_1=(SecretNotFoundError,))


def _vault_settings(path: Path) -> VaultSettings:
    """The `vault:` section of `path`, through the central loader (env overrides apply; errors name key and line).

    Raises:
        ConfigError: the file is unreadable or invalid.
    """
    return load_config(path).vault

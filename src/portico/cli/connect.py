"""`portico connect …`: see and remove users' connections to upstreams with per-user OAuth (`oauth:`).

A thin layer over the vault entries `portico.upstream.oauth_client` writes (scope `user:<subject>:server:<id>`,
name `oauth_tokens`), on the database and keys named by `--config`. Never prints a token. `disconnect` deletes
the user's tokens and records `upstream.disconnect` (reason `operator`) on a chain of its own (a running
Portico holds the configured spool). A running Portico reads a user's tokens from the vault on every call, so
its next call for that user asks them to connect again; its idle connection closes after `idle_timeout_s`.
Exit codes: 0 success, 1 the user was not connected, 2 the config, database or keys cannot be used.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from portico.cli.common import operator_name, record_operator_action, run_with_store
from portico.config import Settings
from portico.config import load as load_config
from portico.store.db import Store
from portico.store.settings import StoreSettings
from portico.upstream.oauth_client import TOKENS_NAME, TokenSet
from portico.vault import SecretNotFoundError, Vault, user_server_scope

T = TypeVar("T")
app = typer.Typer(help="See and remove users' connections to per-user OAuth upstreams.", no_args_is_help=True)
err = Console(stderr=True, highlight=False)
_CONTROL = {c: "\ufffd" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="portico.yaml whose store and vault to use.")]


@dataclass(frozen=True, slots=True)
class Connection:
    """One user's stored connection to one upstream, without its tokens."""

    subject: str
    server_id: str
    expires_at: float | None
    scope: str | None


def parse_tokens_scope(scope: str) -> tuple[str, str] | None:
    """(subject, server id) of a `user:<subject>:server:<id>` scope, else None. Server ids have no colon, so the
    last `:server:` splits it even when the subject contains one."""
    if not scope.startswith("user:"):
        return None
    subject, found, server_id = scope.removeprefix("user:").rpartition(":server:")
    return (subject, server_id) if found and subject and server_id else None


async def list_connections(vault: Vault, server_id: str | None = None) -> list[Connection]:
    """Every stored connection (of `server_id` only, when given), by server then subject.

    Raises:
        VaultError: the vault failed or a key is missing.
    """
    found: list[Connection] = []
    for entry in await vault.list("user:"):
        parsed = parse_tokens_scope(entry.scope)
        if entry.name != TOKENS_NAME or parsed is None or (server_id is not None and parsed[1] != server_id):
            continue
        try:
            tokens = TokenSet.from_json(await vault.get(entry.scope, TOKENS_NAME))
        except ValueError:
            found.append(Connection(*parsed, None, "(unreadable)"))
            continue
        except SecretNotFoundError:  # deleted meanwhile
            continue
        found.append(Connection(*parsed, tokens.expires_at, tokens.scope))
    return sorted(found, key=lambda c: (c.server_id, c.subject))


@app.command("list")
def list_command(
    config: ConfigOption,
    server: Annotated[str | None, typer.Option("--server", help="Only this server id.")] = None,
) -> None:
    """List connected users, one per line: subject, server, access token expiry (UTC), scope. Never tokens."""

    async def run(vault: Vault) -> list[Connection]:
        return await list_connections(vault, server)

    for c in _with_vault(config, run):
        expires = datetime.fromtimestamp(c.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if c.expires_at else "-"
        # One tab-separated line per connection, for people and for `cut`; no wrapping, no markup.
        fields = (c.subject, c.server_id, expires, c.scope or "-")
        sys.stdout.write("\t".join(f.translate(_CONTROL) for f in fields) + "\n")


@app.command("disconnect")
def disconnect_command(
    config: ConfigOption,
    server: Annotated[str, typer.Option("--server", help="Server id whose connection to remove.")],
    user: Annotated[str, typer.Option("--user", help="Subject (Portico user) whose connection to remove.")],
) -> None:
    """Remove a user's tokens for a server (they connect again on their next call); audited."""
    settings: list[Settings] = []

    async def run(vault: Vault) -> None:
        await vault.delete(user_server_scope(user, server), TOKENS_NAME)
        await _record(vault.store, settings[0], user, server)

    _with_vault(config, run, settings)
    err.print(f"disconnected {escape(user)} from {escape(server)}")


async def _record(store: Store, settings: Settings, subject: str, server_id: str) -> None:
    await record_operator_action(
        store,
        settings.audit,
        "upstream.disconnect",
        subject=subject,
        server_id=server_id,
        reason="operator",
        extra={"operator": operator_name()},
    )


def _with_vault(config: Path, body: Callable[[Vault], Awaitable[T]], settings: list[Settings] | None = None) -> T:
    """Open the store and vault of `config` (the loaded settings appended to `settings`), run `body(vault)`;
    "not connected" exits 1, other errors 2."""
    loaded: list[Settings] = [] if settings is None else settings

    def store_settings() -> StoreSettings:
        loaded.append(load_config(config))
        return loaded[0].store

    async def with_vault(store: Store) -> T:
        return await body(Vault(store, loaded[0].vault))

    return run_with_store(store_settings, with_vault, exit_1=(SecretNotFoundError,))

"""What CLI commands share: opening the store for one command and turning errors into one line and an exit code."""

from __future__ import annotations

import getpass
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from portico.audit.log import AuditLog
from portico.audit.settings import AuditSettings
from portico.errors import PorticoError
from portico.store.db import Store, open_store
from portico.store.settings import StoreSettings

T = TypeVar("T")
err = Console(stderr=True, soft_wrap=True)


def run_with_store(
    settings: Callable[[], StoreSettings],
    body: Callable[[Store], Awaitable[T]],
    *,
    migrate: bool = False,
    exit_1: tuple[type[PorticoError], ...] = (),
) -> T:
    """Open the store, run `body(store)`, close it. A Portico error ends as `error: <public message>` with exit
    code 1 for the classes in `exit_1` (e.g. "not found") and 2 otherwise; database and OS errors exit 2."""

    async def main() -> T:
        store = await open_store(settings(), migrate=migrate)
        try:
            return await body(store)
        finally:
            await store.close()

    try:
        return anyio.run(main)
    except PorticoError as exc:
        err.print(f"error: {exc.public}", markup=False, highlight=False)
        raise typer.Exit(1 if isinstance(exc, exit_1) else 2) from exc
    except (SQLAlchemyError, OSError) as exc:
        err.print(f"error: {type(exc).__name__}: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc


async def record_operator_action(store: Store, audit: AuditSettings, method: str, **fields: Any) -> None:
    """One audit record (`AuditLog.event`, outcome ok, `authenticated_by: operator`) for an operator's command,
    on a chain of this invocation's own: a running Portico holds the configured spool and its node's chain."""
    with tempfile.TemporaryDirectory(prefix="portico-cli-audit-") as spool:
        settings = audit.model_copy(update={"spool_dir": Path(spool), "node_id": f"cli-{secrets.token_hex(6)}"})
        async with AuditLog(store, settings) as log:
            log.event(method, "ok", authenticated_by="operator", **fields)


def operator_name() -> str:
    """Who ran the command, for the audit record (the OS account)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

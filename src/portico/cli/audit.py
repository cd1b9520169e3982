"""`portico audit …`: verify the hash chains, tail the newest records, export JSON lines.

A thin layer over `portico.audit.verify`. Each command reads the database named by `--config` (its `store:`
section) or `--db URL`; it never creates or migrates one. Exit codes: 0 success (for `verify`: intact),
1 the log is not intact, 2 the database or config cannot be used.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from portico.audit import verify as reading  # the module: functions verify, tail, export
from portico.audit.model import AuditRecord
from portico.audit.settings import AuditSettings
from portico.cli.common import run_with_store
from portico.config import load as load_config
from portico.errors import ConfigError
from portico.store.db import Store
from portico.store.settings import StoreSettings

T = TypeVar("T")
# Records hold client-chosen strings: never let them drive the terminal (escape sequences, Rich markup).
_CONTROL = {c: "\ufffd" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}

app = typer.Typer(help="Verify, follow and export the audit log.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="portico.yaml whose store to read.")]
DbOption = Annotated[str | None, typer.Option("--db", help="Database URL, instead of --config.")]


@app.command("verify")
def verify_command(
    config: ConfigOption = None,
    db: DbOption = None,
    node: Annotated[str | None, typer.Option(help="Check only this node's chain.")] = None,
) -> None:
    """Check every record's hash and link; exit 1 naming the first bad record of each broken chain."""

    async def run(store: Store) -> reading.VerifyReport:
        return await reading.verify(store, node)

    report = _with_store(config, db, run)
    if not report.ok:
        err.print(report.summary(), markup=False, highlight=False)
        raise typer.Exit(1)
    out.print(report.summary(), markup=False, highlight=False)


@app.command("tail")
def tail_command(
    config: ConfigOption = None,
    db: DbOption = None,
    n: Annotated[int, typer.Option("-n", "--lines", min=0, help="How many of the newest records to show.")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new records as they arrive.")] = False,
) -> None:
    """Show the newest records as a table (commit order, all nodes)."""

    # Piped output has no width of its own; do not squeeze the rows to 80 columns.
    console = out if out.is_terminal else Console(width=sum(w for _, w in _COLUMNS) + 2 * len(_COLUMNS))

    async def run(store: Store) -> None:
        header = True
        async for batch in reading.tail(store, n, follow=follow):
            if batch or header:
                console.print(_table(batch, header))
            header = False

    _with_store(config, db, run)


@app.command("export")
def export_command(
    config: ConfigOption = None,
    db: DbOption = None,
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")] = None,
    since: Annotated[str | None, typer.Option(help="Only records at or after this ISO time (UTC if no zone).")] = None,
) -> None:
    """Write records as JSON lines, each with its hash, so they can be verified without Portico."""
    try:
        start = datetime.fromisoformat(since) if since else None
    except ValueError:
        raise typer.BadParameter("expected an ISO 8601 time, e.g. 2026-01-31T12:00:00Z", param_hint="--since") from None
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=UTC)

    async def run(store: Store) -> int:
        if out_file is None:
            return await reading.export(store, sys.stdout.buffer, since=start)
        with out_file.open("wb") as f:
            return await reading.export(store, f, since=start)

    count = _with_store(config, db, run)
    err.print(f"exported {count} records", highlight=False)


def _with_store(config: Path | None, db: str | None, body: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store (no migration: a mistyped path must not create an empty database), run `body(store)`."""
    return run_with_store(lambda: _store_settings(config, db)[0], body)


def _store_settings(config: Path | None, db: str | None) -> tuple[StoreSettings, AuditSettings]:
    """The store and audit settings of `config` (the full loader: env overrides apply), or a bare `--db` URL.

    Raises:
        ConfigError: the file is unreadable or invalid (naming the key and line).
    """
    if db is not None:
        try:
            return StoreSettings(url=db), AuditSettings()
        except ValidationError as exc:
            raise ConfigError(f"--db: {exc.errors()[0]['msg']}") from exc
    settings = load_config(config)
    return settings.store, settings.audit


def _table(records: list[AuditRecord], header: bool) -> Table:
    table = Table(show_header=header, box=None, pad_edge=False)
    for name, width in _COLUMNS:
        table.add_column(name, width=width, no_wrap=True, overflow="ellipsis")
    for rec in records:
        target = ":".join(x for x in (rec.server_id, rec.target) if x)
        cells = (
            rec.ts.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            f"{rec.node[:8]}:{rec.seq}",
            rec.subject,
            rec.method,
            target or "-",
            rec.decision or "-",
            rec.outcome if rec.error_code is None else f"{rec.outcome} {rec.error_code}",
            f"{rec.latency_ms:.1f}",
        )
        table.add_row(*(Text(cell.translate(_CONTROL)) for cell in cells))
    return table


# Fixed widths keep the rows of later `--follow` batches aligned with the first table.
_COLUMNS = (
    ("time (UTC)", 23),
    ("chain:seq", 14),
    ("subject", 20),
    ("method", 16),
    ("target", 28),
    ("decision", 8),
    ("outcome", 16),
    ("ms", 8),
)

"""`portico tools …`: review and approve pinned tool definitions (the rug-pull guard, `portico.catalog.pins`).

    portico tools list -c portico.yaml [SERVER]          every recorded tool: state, scan findings, approval
    portico tools diff -c portico.yaml SERVER [TOOL]     what changed in each held tool, and the scan's findings
    portico tools approve -c portico.yaml SERVER [TOOL]  pin what the diff showed; running Portico serves it

A running Portico records every tool definition it sees in the store; these commands read and approve those
records, so they work against the database a gateway (or a fleet of replicas) uses, and an approval reaches
every running Portico within `catalog.pin_sync_interval_s`. An approval pins exactly the definition that was
shown: if the upstream changes it again in between, the approval is refused and must be reviewed anew.
Each approval is an audit record (`catalog.approve`, the operator's OS account as subject).

Exit codes: 0 done (nothing held is success too), 1 a tool was refused (scan findings, moved on, unknown), 2 the
config or database cannot be used.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from portico.catalog.pins import ApprovalError, PinBook, PinRecord
from portico.cli.common import operator_name, record_operator_action, run_with_store
from portico.config import Settings
from portico.config import load as load_config
from portico.errors import ConfigError
from portico.inspection.poisoning import diff_tools
from portico.store.db import Store

app = typer.Typer(help="Review and approve pinned tool definitions (rug-pull guard).", no_args_is_help=True)
err = Console(stderr=True, highlight=False)
_CONTROL = {c: "\ufffd" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="portico.yaml whose store to use.")]


@app.command("list")
def list_command(
    config: ConfigOption,
    server: Annotated[str | None, typer.Argument(help="Only this server's tools.")] = None,
) -> None:
    """Every recorded tool: server, tool, state (pinned, new, changed), scan findings, approved by, approved at."""
    settings = _settings(config)
    servers = [server] if server is not None else [s.id for s in settings.servers]

    async def run(store: Store) -> list[PinRecord]:
        book = PinBook(store)
        return [record for server_id in servers for record in await book.records(server_id)]

    for record in run_with_store(lambda: settings.store, run):
        state = record.hold.value if record.hold is not None else "pinned"
        codes = ",".join(sorted({f.code for f in record.findings})) or "-"
        at = record.pinned_at.isoformat(timespec="seconds") if record.pinned_at is not None else "-"
        by = (record.pinned_by or "-").translate(_CONTROL)
        sys.stdout.write(f"{record.server_id}\t{record.tool.translate(_CONTROL)}\t{state}\t{codes}\t{by}\t{at}\n")


@app.command("diff")
def diff_command(
    config: ConfigOption,
    server: Annotated[str, typer.Argument(help="The server whose held tools to show.")],
    tool: Annotated[str | None, typer.Argument(help="Only this tool (the upstream's own name).")] = None,
) -> None:
    """Show each held tool of SERVER: why it is held, the scan's findings, and a diff against what was approved."""
    settings = _settings(config)

    async def run(store: Store) -> list[PinRecord]:
        return await PinBook(store).records(server, tool)

    records = run_with_store(lambda: settings.store, run)
    _require_records(records, server, tool)
    held = [r for r in records if r.hold is not None]
    for record in held:
        sys.stdout.write(_review(record))
    if not held:
        err.print(f"every recorded tool of {escape(server)} is approved", markup=False)


@app.command("approve")
def approve_command(
    config: ConfigOption,
    server: Annotated[str, typer.Argument(help="The server whose held tools to approve.")],
    tool: Annotated[str | None, typer.Argument(help="Only this tool (the upstream's own name).")] = None,
    accept_findings: Annotated[
        bool,
        typer.Option("--accept-findings", help="Approve even tools the poisoning scan blocks (you read why)."),
    ] = False,
) -> None:
    """Approve the held tools of SERVER (or one TOOL): prints what it pins, and pins exactly that."""
    settings = _settings(config)
    who = operator_name()

    async def run(store: Store) -> tuple[list[PinRecord], list[str]]:
        book = PinBook(store)
        records = await book.records(server, tool)
        approved: list[PinRecord] = []
        refusals: list[str] = []
        for record in records:
            if record.hold is None:
                continue
            sys.stdout.write(_review(record))
            try:
                await book.approve(record, who, accept_findings=accept_findings)
            except ApprovalError as exc:
                refusals.append(exc.public)
                continue
            approved.append(record)
            await record_operator_action(
                store,
                settings.audit,
                "catalog.approve",
                subject=who,
                server_id=record.server_id,
                target=record.tool,
                reason=f"approved {record.hold.value} tool definition",
                extra={
                    "hash": record.seen_hash,
                    "previous": record.pinned_hash,
                    "findings": sorted({f.code for f in record.findings}),
                    "accepted_findings": accept_findings and record.blocking,
                },
            )
        return records, [*(f"approved {r.server_id}/{r.tool}" for r in approved), *refusals]

    records, lines = run_with_store(lambda: settings.store, run)
    _require_records(records, server, tool)
    for line in lines:
        err.print(line, markup=False)
    if not lines:
        err.print(f"nothing to approve: every recorded tool of {server} is approved", markup=False)
    if any(not line.startswith("approved ") for line in lines):
        raise typer.Exit(1)


def _review(record: PinRecord) -> str:
    """The block `diff` and `approve` print for one held tool."""
    assert record.hold is not None
    head = f"== {record.server_id}/{record.tool}: {record.hold.value}"
    if record.pinned_at is not None:
        head += f" (approved {record.pinned_at.isoformat(timespec='seconds')} by {record.pinned_by})"
    lines = [head.translate(_CONTROL)]
    for finding in record.findings:
        lines.append(
            f"   {finding.code} {finding.severity.value} at {finding.where}: {finding.reason}".translate(_CONTROL)
        )
    if not record.findings:
        lines.append("   the poisoning scan found nothing")
    body = diff_tools(record.pinned_definition or {}, record.seen_definition)
    return "\n".join(lines) + "\n" + body + "\n"


def _require_records(records: list[PinRecord], server: str, tool: str | None) -> None:
    if records:
        return
    what = f"tool {tool!r} of {server!r}" if tool is not None else f"server {server!r}"
    err.print(
        f"error: no recorded definitions for {what} (a running Portico records them when the server connects)",
        markup=False,
    )
    raise typer.Exit(1)


def _settings(config: Path) -> Settings:
    try:
        return load_config(config)
    except ConfigError as exc:
        err.print(f"error: {exc.public}", markup=False)
        raise typer.Exit(2) from exc

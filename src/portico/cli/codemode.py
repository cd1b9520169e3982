"""`portico codemode stats`: what each URL's tool list costs a model, natively and in Code Mode.

Tab-separated, one URL a line after a header line, for people and for `cut`.

Connects to every enabled upstream of the config (as `portico serve` would, credentials from the vault), lists
their tools, and prints one line per URL — the portal `/mcp` and each `/servers/<id>/mcp`: tools, native
`tools/list` tokens, Code Mode tokens for JavaScript and Python, and the share saved. Counts are cl100k
estimates, offline (`portico.codemode.tokens`). Nothing is recorded: no pins, no audit records.

Exit codes: 0 done, 2 the config or database cannot be used.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console

from portico.catalog.catalog import Catalog
from portico.codemode.accounting import PortalTokens, portal_tokens
from portico.config import Settings
from portico.config import load as load_config
from portico.errors import ConfigError, PorticoError
from portico.store.db import open_store
from portico.upstream.pool import UpstreamPool
from portico.vault import Vault

app = typer.Typer(help="Code Mode: token accounting.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)
CONNECT_WAIT_S = 20.0


@app.callback()
def codemode_group() -> None:
    """Code Mode: token accounting."""


@app.command("stats")
def stats_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="portico.yaml whose servers to count.")],
) -> None:
    """Native vs Code Mode token counts of the tool list of every URL (portal and per server)."""
    try:
        settings = load_config(config)
    except ConfigError as exc:
        err.print(f"error: {exc.public}", markup=False)
        raise typer.Exit(2) from exc
    try:
        rows, missing = anyio.run(_count, settings)
    except PorticoError as exc:
        err.print(f"error: {exc.public}", markup=False)
        raise typer.Exit(2) from exc
    sys.stdout.write("url\ttools\tnative_tokens\tjavascript_tokens\tsaved\tpython_tokens\tsaved\n")
    for row in rows:
        cells = [row.portal, row.tools, row.native, row.javascript, _share(row, row.javascript), row.python]
        sys.stdout.write("\t".join(str(cell) for cell in [*cells, _share(row, row.python)]) + "\n")
    for server_id in missing:
        err.print(f"note: {server_id} did not connect within {CONNECT_WAIT_S:g} s; its tools are not counted")


def _share(row: PortalTokens, codemode: int) -> str:
    return f"{row.saved(codemode):.1%}" if row.native else "-"


async def _count(settings: Settings) -> tuple[list[PortalTokens], list[str]]:
    servers = [s for s in settings.servers if s.enabled]
    store = await open_store(settings.store)
    try:
        pool = UpstreamPool(servers)
        pool.bind_secrets(Vault(store, settings.vault))
        catalog = Catalog(pool, settings.catalog, [s.id for s in servers])
        missing: list[str] = []
        async with anyio.create_task_group() as tg:
            await pool.start(tg, CONNECT_WAIT_S)
            for upstream in pool:
                if upstream.ready:
                    await catalog.refresh(upstream)
                else:
                    missing.append(upstream.id)
            tg.cancel_scope.cancel()
        rows = await anyio.to_thread.run_sync(portal_tokens, catalog, [s.id for s in servers], settings.codemode)
        return rows, missing
    finally:
        await store.close()

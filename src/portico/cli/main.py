"""`portico` — the entry point. Each command is a thin layer over the library; errors end as one clear line."""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from portico import __version__
from portico.cli.audit import app as audit_app
from portico.cli.codemode import app as codemode_app
from portico.cli.connect import app as connect_app
from portico.cli.demo import demo
from portico.cli.device import app as device_app
from portico.cli.policy import app as policy_app
from portico.cli.token import app as token_app
from portico.cli.tools import app as tools_app
from portico.cli.user import app as user_app
from portico.cli.vault import app as vault_app
from portico.config import check_bind, load
from portico.errors import ConfigError

app = typer.Typer(help="Portico: the governed front door for MCP.", no_args_is_help=True, add_completion=False)
app.add_typer(audit_app, name="audit")
app.add_typer(vault_app, name="vault")
app.add_typer(policy_app, name="policy")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(device_app, name="device")
app.add_typer(connect_app, name="connect")
app.add_typer(tools_app, name="tools")
app.add_typer(codemode_app, name="codemode")
app.command()(demo)
console = Console(stderr=True, soft_wrap=True)


@app.command()
def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="portico.yaml to serve.")],
    host: Annotated[str | None, typer.Option(help="Bind address (overrides listen.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port (overrides listen.port).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the portal described by a config file."""
    settings = load(config)
    run_server(settings, host, port, log_level, config_path=config)


@app.command("check")
def check(config: Annotated[Path, typer.Option("--config", "-c", help="portico.yaml to validate.")]) -> None:
    """Validate a config file and exit (0 when valid)."""
    settings = load(config)
    check_bind(settings, settings.listen.host)
    console.print(f"[green]ok[/green] {config}: {len(settings.servers)} servers")


@app.command()
def reference() -> None:
    """Print the configuration reference (Markdown), generated from the settings models."""
    from portico.reference import render

    print(render(), end="")


@app.command()
def version() -> None:
    """Print Portico's version."""
    print(__version__)


def run_server(
    settings: object,
    host: str | None,
    port: int | None,
    log_level: str,
    banner: str = "",
    config_path: Path | None = None,
) -> None:
    import uvicorn

    from portico.app import Portico
    from portico.config import Settings
    from portico.identity.tls import uvicorn_tls_options

    assert isinstance(settings, Settings)
    listen = settings.listen.model_copy(
        update={"host": host or settings.listen.host, "port": settings.listen.port if port is None else port}
    )
    settings = settings.model_copy(update={"listen": listen})
    check_bind(settings, listen.host)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A gateway allocates many short-lived dicts per call; collecting young objects less often saves ~0.1 ms
    # of CPU per call (bench/RESULTS.md) at the cost of a few MB.
    gc.set_threshold(50_000, 50, 100)
    portico = Portico(settings, config_path=config_path)
    console.print(f"[bold]Portico {__version__}[/bold] portal: [cyan]{settings.public_url}/mcp[/cyan]")
    if banner:
        console.print(banner)
    uvicorn.run(
        portico,
        host=listen.host,
        port=listen.port,
        log_level=log_level,
        lifespan="on",
        loop="uvloop",
        access_log=False,
        timeout_graceful_shutdown=5,
        **{"http": "httptools", **uvicorn_tls_options(listen.tls)},
    )


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        console.print(f"[red]config error:[/red] {exc.public}")
        sys.exit(2)


if __name__ == "__main__":
    main()

"""`portico demo`: start the demo upstreams, write a demo config, and serve it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from ruamel.yaml import YAML

console = Console(stderr=True, soft_wrap=True)
REMOTE_DEMOS = {"tickets": "http", "weather": "sse"}


def _spawn(name: str, transport: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "portico.demo.servers", name, "--transport", transport],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )


def _listening_url(name: str, process: subprocess.Popen[bytes], deadline: float) -> str:
    """The URL from the server's `LISTENING <url>` line (the servers start in parallel; this waits for one)."""
    if process.stdout is None:
        raise RuntimeError("demo server started without a stdout pipe")
    line = b""
    while time.monotonic() < deadline and not line.startswith(b"LISTENING "):
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            console.print(f"[red]demo server {name} failed to start (exit code {process.returncode})[/red]")
            raise typer.Exit(1)
    return line.split()[1].decode()


def demo_config(data_dir: Path, urls: dict[str, str], port: int) -> dict[str, object]:
    servers: list[dict[str, object]] = [
        {
            "id": "notes",
            "title": "Notes (stdio, run by Portico)",
            "command": [sys.executable, "-m", "portico.demo.servers", "notes", "--transport", "stdio"],
        },
        {"id": "tickets", "title": "Tickets (Streamable HTTP)", "url": urls["tickets"]},
        {"id": "weather", "title": "Weather (legacy SSE)", "url": urls["weather"], "transport": "sse"},
    ]
    return {
        "auth": "none",
        "listen": {"host": "127.0.0.1", "port": port},
        "store": {"url": f"sqlite:///{data_dir / 'portico.db'}"},
        "audit": {"spool_dir": str(data_dir / "audit-spool")},
        "servers": servers,
        "policy": {
            "rules": [
                {"id": "demo-open", "effect": "permit", "description": "The demo runs on loopback without sign-in."},
                {
                    "id": "demo-no-note-deletion",
                    "effect": "forbid",
                    "servers": ["notes"],
                    "tools": ["delete_note"],
                    "description": "Deleting notes is reserved for administrators.",
                },
            ]
        },
    }


def demo(
    port: Annotated[int, typer.Option(help="Port for the portal.")] = 8080,
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its config, database and audit log.")] = Path(
        ".portico/demo"
    ),
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
) -> None:
    """Run Portico with demo upstream servers (stdio, Streamable HTTP and legacy SSE) on the embedded store."""
    from portico.cli.main import run_server
    from portico.config import load

    # uvicorn re-raises SIGTERM after its graceful shutdown; make that an exit that runs the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        started = {name: _spawn(name, transport) for name, transport in REMOTE_DEMOS.items()}
        processes.extend(started.values())
        deadline = time.monotonic() + 60
        urls = {name: _listening_url(name, process, deadline) for name, process in started.items()}
        config_path = data_dir / "portico.yaml"
        with config_path.open("w") as out:
            out.write("# Written by `portico demo`; serve it again with `portico serve --config` this file.\n")
            YAML().dump(demo_config(data_dir, urls, port), out)
        settings = load(config_path)
        exe = Path(sys.executable).parent / "portico"
        banner = (
            f"  servers: notes (stdio), tickets ({urls['tickets']}), weather ({urls['weather']})\n"
            f"  per-server URLs: http://127.0.0.1:{port}/servers/<id>/mcp\n"
            f"  audit log: {exe} audit tail --config {config_path}\n"
            f"  health: http://127.0.0.1:{port}/readyz   metrics: http://127.0.0.1:{port}/metrics"
        )
        run_server(settings, None, None, log_level, banner)
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

"""`portico demo`: start the demo upstreams, write a demo config, and serve it."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console
from ruamel.yaml import YAML

from portico.config import Settings
from portico.identity.users import UserDirectory, UserNotFoundError
from portico.keyfile import load_or_create
from portico.store.db import open_store
from portico.vault import Vault

console = Console(stderr=True, soft_wrap=True)
REMOTE_DEMOS = {"tickets": "http", "weather": "sse", "external": "http"}
DEMO_IDP = "demo-idp"
DRIVE = "drive"


def _spawn(name: str, transport: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "portico.demo.servers", name, "--transport", transport],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )


def _spawn_idp(port: int, secret: str) -> subprocess.Popen[bytes]:
    """The demo's identity provider (`portico.demo.idp`), told where Portico's SSO callback is."""
    callback = f"http://127.0.0.1:{port}/login/sso/{DEMO_IDP}/callback"
    return subprocess.Popen(
        [sys.executable, "-m", "portico.demo.idp", "--port", "0", "--redirect-uri", callback],
        stdout=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "PORTICO_DEMO_IDP_SECRET": secret},
    )


def _spawn_drive(catalog_token: str) -> subprocess.Popen[bytes]:
    """The demo Drive (`portico.demo.drive`): an upstream with its own authorization server (per-user OAuth)."""
    return subprocess.Popen(
        [sys.executable, "-m", "portico.demo.drive", "--port", "0"],
        stdout=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "PORTICO_DEMO_DRIVE_CATALOG_TOKEN": catalog_token},
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
    idp = {
        "id": DEMO_IDP,
        "display_name": "Demo IdP",
        "issuer": urls[DEMO_IDP],
        "client_id": "portico-demo",
        "client_secret": f"${{file:{data_dir / 'demo-idp.secret'}}}",
        "scopes": ["openid", "profile", "email", "groups"],
        "group_map": {"engineering": "staff"},
    }
    servers: list[dict[str, object]] = [
        {
            "id": "notes",
            "title": "Notes (stdio, run by Portico)",
            "command": [sys.executable, "-m", "portico.demo.servers", "notes", "--transport", "stdio"],
        },
        {"id": "tickets", "title": "Tickets (Streamable HTTP)", "url": urls["tickets"]},
        {
            "id": "weather",
            "title": "Weather (legacy SSE; public: anonymous callers at /servers/weather/mcp, rate-limited)",
            "url": urls["weather"],
            "transport": "sse",
            "public": {"rate_limit": {"requests_per_minute": 30, "burst": 10}},
        },
        {
            "id": "external",
            "title": "Acme Translate (an external SaaS: no cards or secrets may go there)",
            "url": urls["external"],
            "tags": ["third-party"],
        },
        {
            "id": DRIVE,
            "title": "Demo Drive (per-user OAuth)",
            "url": urls[DRIVE],
            # Portico lists the Drive's tools with this token; each person's calls carry their own Drive token.
            "oauth": {"catalog_credential": f"${{file:{data_dir / 'drive-catalog.token'}}}"},
        },
    ]
    return {
        "auth": "oauth",
        "listen": {"host": "127.0.0.1", "port": port},
        "store": {"url": f"sqlite:///{data_dir / 'portico.db'}"},
        "audit": {"spool_dir": str(data_dir / "audit-spool")},
        "vault": {"key_file": str(data_dir / "vault.key")},
        "identity": {
            "tokens": {"key_file": str(data_dir / "signing-keys.json")},
            "sso": [idp],
            "sso_state_key_file": str(data_dir / "sso-state.key"),
        },
        "servers": servers,
        # Every demo server is pinned (the default, `pinning: {}`): a changed tool definition is held for review
        # (`portico tools diff/approve`). Results are inspected for prompt injection (the default `inspection:`).
        "codemode": {"mode": "opt_in"},  # /mcp?codemode=search_and_execute: two tools, code in a sandbox
        "dlp": {
            "fingerprint_key_file": str(data_dir / "dlp-fingerprint.key"),
            "rules": [
                {"id": "no-cards-or-secrets-to-third-parties", "action": "block", "direction": "request",
                 "detectors": ["card", "secrets"], "tags": ["third-party"],
                 "description": "Payment cards and credentials never leave for third-party servers."},
                {"id": "staff-see-no-card-numbers-in-notes", "action": "redact", "direction": "response",
                 "detectors": ["card", "iban"], "servers": ["notes"], "groups": ["staff"],
                 "description": "Staff read notes with card numbers and IBANs masked."},
            ],
        },
        "policy": {
            "rules": [
                {"id": "admins-everything", "effect": "permit", "groups": ["admins"],
                 "description": "Administrators may use every server."},
                {"id": "staff-notes-weather", "effect": "permit", "groups": ["staff"], "servers": ["notes", "weather"],
                 "description": "Staff use notes and weather."},
                {"id": "staff-external", "effect": "permit", "groups": ["staff"], "servers": ["external"],
                 "description": "Staff use Acme Translate (DLP keeps cards and secrets away from it)."},
                {"id": "public-weather", "effect": "permit", "users": ["anonymous"], "servers": ["weather"],
                 "description": "Anyone may ask the public weather server, without signing in."},
                {"id": "staff-drive", "effect": "permit", "groups": ["staff"], "servers": [DRIVE],
                 "description": "Staff use the Demo Drive, each with their own Drive account (per-user OAuth)."},
                {"id": "staff-read-tickets", "effect": "permit", "groups": ["staff"], "servers": ["tickets"],
                 "kinds": ["tools"], "tools": ["list_tickets", "get_ticket"],
                 "description": "Staff may read tickets, not create them."},
                {"id": "destructive-needs-mfa", "effect": "forbid", "annotations": {"destructiveHint": True},
                 "unless": {"mfa": True},
                 "description": "Destructive tools need a second factor (enrol TOTP: portico user totp enrol)."},
            ]
        },
    }  # fmt: skip


# Demo accounts on a loopback-only demo: fixed passwords so the banner can print them.
DEMO_USERS = {
    "admin": ("admins", "portico-demo-admin", "every tool; delete_note once TOTP is enrolled"),
    "dana": ("staff", "portico-demo-dana", "notes, weather and Drive, read-only tickets"),
}


async def _ensure_demo_users(settings: Settings) -> None:
    """Create the demo accounts, or reset their passwords and groups to the printed ones."""
    store = await open_store(settings.store, migrate=True)
    try:
        users = UserDirectory(store, Vault(store, settings.vault), settings.identity.users)
        for username, (group, password, _) in DEMO_USERS.items():
            try:
                await users.get_user(username)
            except UserNotFoundError:
                await users.add_user(username, password, groups=[group], display_name=f"Demo {username}")
            else:
                await users.set_password(username, password)
                await users.enable_user(username)
                await users.add_to_group(username, group)
    finally:
        await store.close()


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
        secret = load_or_create(data_dir / "demo-idp.secret", lambda: secrets.token_urlsafe(32))
        started = {name: _spawn(name, transport) for name, transport in REMOTE_DEMOS.items()}
        started[DEMO_IDP] = _spawn_idp(port, secret)
        catalog_token = load_or_create(data_dir / "drive-catalog.token", lambda: secrets.token_urlsafe(32))
        started[DRIVE] = _spawn_drive(catalog_token)
        processes.extend(started.values())
        deadline = time.monotonic() + 60
        urls = {name: _listening_url(name, process, deadline) for name, process in started.items()}
        config_path = data_dir / "portico.yaml"
        with config_path.open("w") as out:
            out.write("# Written by `portico demo`; serve it again with `portico serve --config` this file.\n")
            YAML().dump(demo_config(data_dir, urls, port), out)
        settings = load(config_path)
        anyio.run(_ensure_demo_users, settings)
        exe = Path(sys.executable).parent / "portico"
        accounts = "\n".join(
            f"    {name:<6} password {password:<20} group {group}: {what}"
            for name, (group, password, what) in DEMO_USERS.items()
        )
        banner = (
            f"  servers: notes (stdio), tickets ({urls['tickets']}), weather ({urls['weather']}; public: anyone\n"
            f"    may call http://127.0.0.1:{port}/servers/weather/mcp without signing in, 30 requests a minute\n"
            f"    per address), external (Acme Translate, {urls['external']}: a DLP rule blocks payment cards\n"
            "    and secrets to it; its fetch_page('https://acme.example/pricing') carries a hidden prompt\n"
            "    injection that the inspection stage blocks),\n"
            f"    drive ({urls[DRIVE]}, per-user OAuth): the first call to a drive__ tool asks you to connect your\n"
            "    Drive account: open the link in the browser you signed in to Portico with, confirm, and sign in at\n"
            "    Demo Drive; from then on your calls see your own Drive files\n"
            f"  per-server URLs: http://127.0.0.1:{port}/servers/<id>/mcp\n"
            f"  Code Mode: http://127.0.0.1:{port}/mcp?codemode=search_and_execute (add &lang=python for Python):\n"
            "    two tools, search and execute, whose code calls your tools in a sandbox\n"
            "  sign-in is on (OAuth 2.1): point an MCP client at the portal URL and sign in, in the browser\n"
            f"  it opens, as one of\n{accounts}\n"
            '    or choose "Sign in with Demo IdP" (single sign-on): Erin, IdP group engineering -> staff, signed\n'
            "    in with a second factor at the IdP, so destructive tools such as notes__delete_note are open to her\n"
            f"  a token for scripts: {exe} token issue --config {config_path} --user dana\n"
            f"  second factor: {exe} user totp enrol admin --config {config_path}\n"
            f"  audit log: {exe} audit tail --config {config_path}\n"
            f"  pinned tool definitions (a changed one is held for review): {exe} tools list --config {config_path}\n"
            f"  health: http://127.0.0.1:{port}/readyz   metrics: http://127.0.0.1:{port}/metrics"
        )
        run_server(settings, None, None, log_level, banner, config_path=config_path)
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

"""`portico device …`: enrol, revoke and list device certificates.

A thin layer over `portico.identity.devices.DeviceRegistry`, on the database named by `--config`. Listings are
tab-separated, one device a line (id, fingerprint, owner, state, enrolled at, last seen, name), for people
and for `cut`. A revocation reaches a running gateway within its `devices.cache_ttl_s`. Exit codes: 0
success, 1 no such device or the certificate is already enrolled, 2 the input, config or database cannot be
used.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from portico.cli.common import run_with_store
from portico.config import load as load_config
from portico.errors import ConfigError
from portico.identity.context.certs import ChainVerifier, from_pem, load_ca_bundle
from portico.identity.devices import Device, DeviceExistsError, DeviceNotFoundError, DeviceRegistry
from portico.store.db import Store
from portico.store.settings import StoreSettings

T = TypeVar("T")
_CONTROL = {c: "\ufffd" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}

app = typer.Typer(help="Enrol, revoke and list device certificates.", no_args_is_help=True)
err = Console(stderr=True, highlight=False)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="portico.yaml whose store to use.")]


@app.command("enroll")
def enroll_command(
    config: ConfigOption,
    owner: Annotated[str, typer.Option("--owner", help="The subject (user) the device belongs to.")],
    cert: Annotated[
        Path | None, typer.Option("--cert", help="The device's PEM certificate file (its first certificate).")
    ] = None,
    fingerprint: Annotated[
        str | None, typer.Option("--fingerprint", help="Instead of --cert: the SHA-256 of the certificate's DER.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A name for the device, shown in listings.")] = None,
) -> None:
    """Enrol a device certificate for an owner; prints the device's line."""
    if (cert is None) == (fingerprint is None):
        err.print("error: give exactly one of --cert and --fingerprint")
        raise typer.Exit(2)
    if cert is not None:
        try:
            certificate = cert.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            err.print(f"error: cannot read {escape(str(cert))}: {escape(str(exc))}")
            raise typer.Exit(2) from exc
        _check_chain(config, certificate)
    else:
        certificate = fingerprint or ""

    async def run(registry: DeviceRegistry) -> Device:
        return await registry.enroll(certificate, owner, name)

    device = _with_registry(config, run, migrate=True)
    sys.stdout.write(_line(device))
    err.print(f"enrolled {device.id} for {escape(device.owner)}")


@app.command("revoke")
def revoke_command(
    config: ConfigOption,
    device: Annotated[str, typer.Argument(help="The device's id (dev_…) or certificate fingerprint.")],
) -> None:
    """Revoke a device: from now on (within the gateway's cache TTL) it counts as revoked."""

    async def run(registry: DeviceRegistry) -> Device:
        return await registry.revoke(device)

    revoked = _with_registry(config, run)
    err.print(f"revoked {revoked.id} ({escape(revoked.owner)})")


@app.command("list")
def list_command(
    config: ConfigOption,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this subject's devices.")] = None,
) -> None:
    """List devices: id, fingerprint, owner, state, enrolled at, last seen, name."""

    async def run(registry: DeviceRegistry) -> tuple[Device, ...]:
        return await registry.list_devices(owner)

    for device in _with_registry(config, run):
        sys.stdout.write(_line(device))


def _line(device: Device) -> str:
    name = (device.name or "").translate(_CONTROL)
    return (
        f"{device.id}\t{device.fingerprint}\t{device.owner}\t{device.state}\t{_time(device.enrolled_at)}\t"
        f"{_time(device.last_seen)}\t{name}\n"
    )


def _time(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def _check_chain(config: Path, certificate: str) -> None:
    """Refuse a certificate the gateway would never accept (wrong CA, expired, X.509 v1…), now rather than at
    the first call, when `devices.ca_file` is configured."""
    try:
        ca_file = load_config(config).devices.ca_file
        if ca_file is None:
            return
        presented = from_pem(certificate)
        if presented is None:
            err.print("error: the --cert file holds no readable PEM certificate")
            raise typer.Exit(2)
        problem = ChainVerifier(load_ca_bundle(ca_file), ttl_s=1, max_entries=1).problem(presented)
    except ConfigError as exc:
        err.print(f"error: {escape(exc.public)}")
        raise typer.Exit(2) from exc
    if problem is not None:
        err.print(f"error: Portico would not accept this certificate: {escape(problem)}")
        raise typer.Exit(2)


def _with_registry(config: Path, body: Callable[[DeviceRegistry], Awaitable[T]], *, migrate: bool = False) -> T:
    """Open the store of `config` and run `body` on its registry; "no such device" and "already enrolled" exit
    1, other errors 2."""

    def store_settings() -> StoreSettings:
        return load_config(config).store

    async def with_registry(store: Store) -> T:
        return await body(DeviceRegistry(store))

    return run_with_store(
        store_settings, with_registry, migrate=migrate, exit_1=(DeviceNotFoundError, DeviceExistsError)
    )

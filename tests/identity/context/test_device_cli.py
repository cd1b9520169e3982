"""`portico device …` through Typer's runner, on both backends."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner, Result

from portico.cli.device import app
from portico.identity.devices import DeviceRegistry
from portico.store import Store
from tests.identity.context.certs import Issued, expired, self_signed

pytestmark = pytest.mark.anyio


@pytest.fixture
def config(store: Store, tmp_path: Path) -> Path:
    path = tmp_path / "portico.yaml"
    path.write_text(f"store:\n  url: {store.settings.url}\nservers: []\n")
    return path


async def invoke(*args: str) -> Result:
    """Run the CLI in a worker thread: each command runs its own event loop, as it does from a shell."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(app, list(args)))


async def test_enroll_list_and_revoke_a_device(
    config: Path, store: Store, tmp_path: Path, alice_laptop: Issued
) -> None:
    cert = tmp_path / "alice.pem"
    cert.write_text(alice_laptop.pem)
    enrolled = await invoke("enroll", "-c", str(config), "--cert", str(cert), "--owner", "alice", "--name", "laptop")
    assert enrolled.exit_code == 0, enrolled.output
    device = await DeviceRegistry(store).get(alice_laptop.fingerprint)
    assert device is not None
    assert (device.owner, device.name, device.state) == ("alice", "laptop", "enrolled")
    assert enrolled.stdout.startswith(f"{device.id}\t{alice_laptop.fingerprint}\talice\tenrolled\t")

    listed = await invoke("list", "-c", str(config))
    fields = listed.stdout.rstrip("\n").split("\t")
    assert (fields[0], fields[1], fields[2], fields[3], fields[5], fields[6]) == (
        device.id, alice_laptop.fingerprint, "alice", "enrolled", "-", "laptop"
    )  # fmt: skip

    revoked = await invoke("revoke", "-c", str(config), device.id)
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked {device.id}" in revoked.stderr
    assert (await DeviceRegistry(store).get(device.id)).state == "revoked"
    assert "\trevoked\t" in (await invoke("list", "-c", str(config), "--owner", "alice")).stdout
    assert (await invoke("list", "-c", str(config), "--owner", "bob")).stdout == ""


async def test_enroll_by_fingerprint_and_revoke_by_fingerprint(config: Path, store: Store, bob_phone: Issued) -> None:
    enrolled = await invoke("enroll", "-c", str(config), "--fingerprint", bob_phone.fingerprint, "--owner", "bob")
    assert enrolled.exit_code == 0, enrolled.output
    assert (await invoke("revoke", "-c", str(config), bob_phone.fingerprint.upper())).exit_code == 0
    device = await DeviceRegistry(store).lookup(bob_phone.fingerprint)
    assert device is not None
    assert device.state == "revoked"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("revoke", "dev_0123456789abcdef"), 1),
        (("enroll", "--owner", "alice"), 2),
        (("enroll", "--owner", "alice", "--fingerprint", "00", "--cert", "x.pem"), 2),
        (("enroll", "--owner", "alice", "--fingerprint", "not-hex"), 2),
        (("enroll", "--owner", "alice", "--cert", "/nonexistent/cert.pem"), 2),
    ],
)
async def test_refusals_have_their_exit_codes(config: Path, args: tuple[str, ...], code: int) -> None:
    result = await invoke(*args[:1], "-c", str(config), *args[1:])
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error:")


async def test_enrolling_the_same_certificate_twice_exits_1(config: Path, alice_laptop: Issued) -> None:
    args = ("enroll", "-c", str(config), "--fingerprint", alice_laptop.fingerprint, "--owner", "alice")
    assert (await invoke(*args)).exit_code == 0
    again = await invoke(*args)
    assert again.exit_code == 1
    assert "already enrolled" in again.stderr


@pytest.mark.parametrize("which", ["another CA", "expired"])
async def test_enrol_refuses_a_certificate_the_gateway_would_never_accept(
    store: Store, tmp_path: Path, ca: Issued, which: str
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca.pem)
    config = tmp_path / "with-ca.yaml"
    config.write_text(
        f"store:\n  url: {store.settings.url}\ndevices: {{cert_sources: [mtls], ca_file: '{ca_file}'}}\nservers: []\n"
    )
    bad = self_signed() if which == "another CA" else expired(ca, "old-laptop")
    cert = tmp_path / "bad.pem"
    cert.write_text(bad.pem)
    refused = await invoke("enroll", "-c", str(config), "--cert", str(cert), "--owner", "alice")
    assert refused.exit_code == 2, refused.output
    assert "would not accept this certificate" in refused.stderr
    assert await DeviceRegistry(store).list_devices() == ()

"""`DeviceRegistry` on SQLite and PostgreSQL: enrolment, revocation, listing, the cached lookup."""

from __future__ import annotations

import pytest

from portico.identity.devices import (
    DeviceExistsError,
    DeviceInputError,
    DeviceNotFoundError,
    DeviceRegistry,
)
from portico.store import Store
from tests.identity.conftest import ManualClock
from tests.identity.context.certs import Issued

pytestmark = pytest.mark.anyio


async def test_a_device_enrolled_by_pem_is_found_by_its_der_fingerprint(
    registry: DeviceRegistry, alice_laptop: Issued
) -> None:
    device = await registry.enroll(alice_laptop.pem, "alice", "Alice's laptop")
    assert (device.fingerprint, device.owner, device.name, device.state) == (
        alice_laptop.fingerprint,
        "alice",
        "Alice's laptop",
        "enrolled",
    )
    assert device.id.startswith("dev_")
    assert await registry.get(device.id) == device
    assert await registry.lookup(alice_laptop.fingerprint) == device


async def test_a_device_can_be_enrolled_by_a_fingerprint_written_with_colons(
    registry: DeviceRegistry, alice_laptop: Issued
) -> None:
    fp = alice_laptop.fingerprint
    pasted = "SHA256:" + ":".join(fp[i : i + 2] for i in range(0, 64, 2)).upper()
    device = await registry.enroll(pasted, "alice")
    assert device.fingerprint == fp
    assert (await registry.get(pasted)).id == device.id


async def test_a_certificate_is_enrolled_once_even_after_revocation(
    registry: DeviceRegistry, alice_laptop: Issued
) -> None:
    device = await registry.enroll(alice_laptop.pem, "alice")
    with pytest.raises(DeviceExistsError):
        await registry.enroll(alice_laptop.pem, "bob")
    await registry.revoke(device.id)
    with pytest.raises(DeviceExistsError):
        await registry.enroll(alice_laptop.fingerprint, "alice")


async def test_revoking_is_by_id_or_fingerprint_and_the_first_time_stays(
    registry: DeviceRegistry, alice_laptop: Issued, clock: ManualClock
) -> None:
    device = await registry.enroll(alice_laptop.pem, "alice")
    first = await registry.revoke(alice_laptop.fingerprint)
    clock.advance(60)
    again = await registry.revoke(device.id)
    assert first.state == again.state == "revoked"
    assert first.revoked_at is not None
    assert again.revoked_at == first.revoked_at


@pytest.mark.parametrize("which", ["dev_0000000000000000", "0" * 64, "not-a-device"])
async def test_revoking_an_unknown_device_is_not_found(registry: DeviceRegistry, which: str) -> None:
    with pytest.raises(DeviceNotFoundError):
        await registry.revoke(which)


@pytest.mark.parametrize(
    ("certificate", "owner", "name"),
    [
        ("abc", "alice", None),
        ("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n", "alice", None),
        ("0" * 64, "alice smith", None),
        ("0" * 64, "", None),
        ("0" * 64, "alice", "bad\x1bname"),
        ("0" * 64, "alice", "x" * 201),
    ],
)
async def test_malformed_enrolments_are_refused(
    registry: DeviceRegistry, certificate: str, owner: str, name: str | None
) -> None:
    with pytest.raises(DeviceInputError):
        await registry.enroll(certificate, owner, name)
    assert await registry.list_devices() == ()


async def test_devices_are_listed_oldest_first_and_by_owner(
    registry: DeviceRegistry, alice_laptop: Issued, bob_phone: Issued, clock: ManualClock
) -> None:
    a = await registry.enroll(alice_laptop.pem, "alice")
    clock.advance(1)
    b = await registry.enroll(bob_phone.pem, "bob")
    assert [d.id for d in await registry.list_devices()] == [a.id, b.id]
    assert [d.id for d in await registry.list_devices("bob")] == [b.id]


@pytest.mark.requirement("devices:revocation-within-ttl")
async def test_a_revocation_elsewhere_is_seen_once_the_cache_ttl_passes(
    store: Store, registry: DeviceRegistry, alice_laptop: Issued, clock: ManualClock
) -> None:
    other_process = DeviceRegistry(store, ttl_s=5.0, clock=clock)  # e.g. `portico device revoke`
    await registry.enroll(alice_laptop.pem, "alice")
    assert (await registry.lookup(alice_laptop.fingerprint)).state == "enrolled"  # type: ignore[union-attr]
    await other_process.revoke(alice_laptop.fingerprint)
    clock.advance(4.9)
    assert (await registry.lookup(alice_laptop.fingerprint)).state == "enrolled"  # type: ignore[union-attr]
    clock.advance(0.2)
    assert (await registry.lookup(alice_laptop.fingerprint)).state == "revoked"  # type: ignore[union-attr]


async def test_a_revocation_in_the_same_process_takes_effect_at_once(
    registry: DeviceRegistry, alice_laptop: Issued
) -> None:
    await registry.enroll(alice_laptop.pem, "alice")
    assert (await registry.lookup(alice_laptop.fingerprint)).state == "enrolled"  # type: ignore[union-attr]
    await registry.revoke(alice_laptop.fingerprint)
    assert (await registry.lookup(alice_laptop.fingerprint)).state == "revoked"  # type: ignore[union-attr]


async def test_an_unregistered_answer_is_cached_too_but_an_enrolment_here_clears_it(
    registry: DeviceRegistry, alice_laptop: Issued
) -> None:
    assert await registry.lookup(alice_laptop.fingerprint) is None
    await registry.enroll(alice_laptop.pem, "alice")
    assert await registry.lookup(alice_laptop.fingerprint) is not None


async def test_last_seen_is_written_at_most_once_per_interval(
    registry: DeviceRegistry, alice_laptop: Issued, clock: ManualClock
) -> None:
    device = await registry.enroll(alice_laptop.pem, "alice")
    await registry.lookup(alice_laptop.fingerprint)
    first = (await registry.get(device.id)).last_seen
    assert first is not None
    assert first.timestamp() == clock.now
    clock.advance(60)  # past the cache TTL, inside the last-seen interval
    await registry.lookup(alice_laptop.fingerprint)
    assert (await registry.get(device.id)).last_seen == first
    clock.advance(300)
    await registry.lookup(alice_laptop.fingerprint)
    assert (await registry.get(device.id)).last_seen.timestamp() == clock.now  # type: ignore[union-attr]

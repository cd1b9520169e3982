"""Fixtures for the connection-context tests: a device CA and certificates made for this test session, their
files, and a device registry on each store backend (the `store` fixture of tests/identity)."""

from __future__ import annotations

from pathlib import Path

import pytest

from portico.identity.devices import DeviceRegistry
from portico.store import Store
from tests.identity.conftest import ManualClock
from tests.identity.context.certs import Issued, issue, make_ca, self_signed


@pytest.fixture(scope="session")
def ca() -> Issued:
    return make_ca()


@pytest.fixture(scope="session")
def alice_laptop(ca: Issued) -> Issued:
    return issue(ca, "alice-laptop")


@pytest.fixture(scope="session")
def bob_phone(ca: Issued) -> Issued:
    return issue(ca, "bob-phone")


@pytest.fixture(scope="session")
def stranger() -> Issued:
    """Chains to a CA of its own, not to the device CA."""
    return self_signed("mallory-laptop")


@pytest.fixture
def ca_file(ca: Issued, tmp_path: Path) -> Path:
    path = tmp_path / "device-ca.pem"
    path.write_text(ca.pem)
    return path


@pytest.fixture
def registry(store: Store, clock: ManualClock) -> DeviceRegistry:
    """A registry whose cache keeps answers 5 s on the manual clock."""
    return DeviceRegistry(store, ttl_s=5.0, last_seen_interval_s=300.0, clock=clock)

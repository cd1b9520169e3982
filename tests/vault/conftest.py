"""Fixtures for tests/vault: a store on each backend (see tests/store/backends.py), keys, and a vault on them."""

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `tests.store.backends` is shared with tests/store and tests/audit
    sys.path.insert(0, str(REPO_ROOT))

from portico.store import Store  # noqa: E402
from portico.vault import Vault, VaultSettings  # noqa: E402
from portico.vault.crypto import new_key_text  # noqa: E402
from tests.store.backends import pg_url, store, store_settings  # noqa: E402

__all__ = ["key_a", "key_b", "key_c", "pg_url", "store", "store_settings", "vault", "vault_settings"]


@pytest.fixture
def key_a() -> str:
    return new_key_text()


@pytest.fixture
def key_b() -> str:
    return new_key_text()


@pytest.fixture
def key_c() -> str:
    return new_key_text()


@pytest.fixture
def vault_settings(tmp_path: Path) -> VaultSettings:
    """Key file under the test's own directory (never the working directory's `.portico/`)."""
    return VaultSettings(key_file=tmp_path / "vault" / "vault.key")


@pytest.fixture
def vault(store: Store, vault_settings: VaultSettings, key_a: str) -> Vault:
    """A vault on each backend whose current key is `key_a` (from its environment)."""
    return Vault(store, vault_settings, env={"PORTICO_VAULT_KEY": key_a})

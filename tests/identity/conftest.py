"""Fixtures for tests/identity: a store on each backend (see tests/store/backends.py), a vault key, a clock the
test moves by hand, and a user directory on them with cheap Argon2 parameters."""

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `tests.store.backends` is shared with tests/store, tests/audit, tests/vault
    sys.path.insert(0, str(REPO_ROOT))

from portico.identity.passwords import Argon2Params, PasswordHasher  # noqa: E402
from portico.identity.settings import LocalUserSettings  # noqa: E402
from portico.identity.users import UserDirectory  # noqa: E402
from portico.store import Store  # noqa: E402
from portico.vault import Vault, VaultSettings  # noqa: E402
from portico.vault.crypto import new_key_text  # noqa: E402
from tests.store.backends import pg_url, store, store_settings  # noqa: E402

__all__ = ["clock", "directory", "fast_hasher", "pg_url", "store", "store_settings", "vault", "vault_key"]

# 1 MiB, one pass: ~1 ms a hash, so directory tests exercise the logic, not the CPU. The production parameters
# are checked in test_passwords.py and used by the CLI tests.
FAST = Argon2Params(time_cost=1, memory_kib=1024)
START = 1_800_000_000.0  # 2027-01-15T08:00:00Z, on a 30 s step boundary


class ManualClock:
    """Unix seconds that move only when the test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fast_hasher() -> PasswordHasher:
    return PasswordHasher(FAST)


@pytest.fixture
def vault_key() -> str:
    return new_key_text()


@pytest.fixture
def vault(store: Store, tmp_path: Path, vault_key: str) -> Vault:
    """A vault on each backend whose current key comes from its environment (no key file is written)."""
    return Vault(store, VaultSettings(key_file=tmp_path / "vault.key"), env={"PORTICO_VAULT_KEY": vault_key})


@pytest.fixture
def directory(store: Store, vault: Vault, fast_hasher: PasswordHasher, clock: ManualClock) -> UserDirectory:
    """Lockout after 3 failures for 10 minutes, on the manual clock."""
    settings = LocalUserSettings(max_failed_logins=3, lockout_s=600)
    return UserDirectory(store, vault, settings, hasher=fast_hasher, clock=clock)

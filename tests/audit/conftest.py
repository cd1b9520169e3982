"""Fixtures for tests/audit: a store on each backend (see tests/store/backends.py) and an audit log on it."""

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `tests.store.backends` is shared with tests/store
    sys.path.insert(0, str(REPO_ROOT))

from portico.audit import AuditLog, AuditSettings  # noqa: E402
from portico.store import Store  # noqa: E402
from tests.store.backends import pg_url, store, store_settings  # noqa: E402

__all__ = ["audit_log", "audit_settings", "pg_url", "store", "store_settings"]


@pytest.fixture
def audit_settings(tmp_path: Path) -> AuditSettings:
    """Spool, key and node id under the test's own directory; flushed often so tests wait little."""
    return AuditSettings(spool_dir=tmp_path / "audit" / "spool", flush_interval_ms=10)


@pytest.fixture
async def audit_log(store: Store, audit_settings: AuditSettings) -> AsyncIterator[AuditLog]:
    async with AuditLog(store, audit_settings, env={}) as log:
        yield log

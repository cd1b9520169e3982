"""Fixtures for tests/store: the same test body on SQLite and PostgreSQL (see `backends`)."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `tests.store.backends` is shared with tests/audit
    sys.path.insert(0, str(REPO_ROOT))

from tests.store.backends import pg_url, store, store_settings  # noqa: E402

__all__ = ["pg_url", "store", "store_settings"]

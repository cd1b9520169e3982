"""Persistent state: one schema over an embedded SQLite file (default) or a shared PostgreSQL (scale-out).

Sits below every component that keeps state (audit, identity, registry, vault). Imports only
`portico.errors` and third-party libraries; components import `open_store`/`Store` and the tables they own
from `portico.store.tables`. Schema changes are Alembic revisions in `migrations/versions/`.
"""

from portico.store.db import Store, StoreError, open_store
from portico.store.settings import StoreSettings

__all__ = ["Store", "StoreError", "StoreSettings", "open_store"]

"""Alembic migrations for `portico.store.tables` (run in-process by `portico.store.db.open_store`)."""

"""Alembic environment for Portico, on SQLite and PostgreSQL alike.

In-process (`open_store`), the caller passes an open connection in `config.attributes["connection"]` and this
file migrates on it. From the `alembic` command line (to write a new revision), set `PORTICO_STORE_URL` to a
plain `sqlite:///…` or `postgresql://…` URL and run
``alembic -c src/portico/store/migrations/alembic.ini revision --autogenerate -m "…"``.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from portico.catalog import pin_tables as _pin_tables  # noqa: F401  (registers tool_pins)
from portico.identity import device_tables as _device_tables  # noqa: F401  (registers devices)
from portico.identity import user_tables as _identity_tables  # noqa: F401  (registers users, groups, group_members, user_totp)
from portico.identity.authserver import tables as _oauth_tables  # noqa: F401  (registers the oauth_* tables)
from portico.store.settings import StoreSettings
from portico.store.tables import metadata
from portico.upstream import connect_tables as _connect_tables  # noqa: F401  (registers connect_tickets)
from portico.vault import tables as _vault_tables  # noqa: F401  (registers vault_secrets on metadata)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _migrate(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _migrate_from_url(url: str) -> None:
    engine = create_async_engine(StoreSettings(url=url).async_url)
    async with engine.begin() as conn:
        await conn.run_sync(_migrate)
    await engine.dispose()


def _url() -> str:
    return os.environ.get("PORTICO_STORE_URL") or StoreSettings().url


connection = context.config.attributes.get("connection")
if connection is not None:
    _migrate(connection)
elif context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_migrate_from_url(_url()))

"""Open the database: build the async engine, tune SQLite, and bring the schema to the newest migration.

Migrations run in-process at start-up (no separate `alembic upgrade` step to forget). On PostgreSQL they run
under an advisory lock, so replicas starting together migrate once and the others wait, then find nothing to
do. The Alembic scripts live in `portico/store/migrations/` and ship inside the wheel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from portico.errors import PorticoError
from portico.store.settings import StoreSettings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant shared by all replicas; pg_advisory_xact_lock takes a bigint. ("PORTICO" in ASCII.)
_MIGRATION_LOCK_ID = 0x504F5254494343


class StoreError(PorticoError):
    """The database cannot be opened, migrated or is missing. `detail` holds the driver's message."""

    default_public = "Database unavailable"


class Store:
    """An open database: the async engine plus what callers need to know about it.

    Create with `open_store`; close with `close()` (disposes of the connection pool).
    """

    def __init__(self, engine: AsyncEngine, settings: StoreSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.dialect = settings.dialect

    async def close(self) -> None:
        """Close every pooled connection. The store is unusable afterwards."""
        await self.engine.dispose()

    def __repr__(self) -> str:
        return f"Store({self.settings.redacted_url()})"


async def open_store(settings: StoreSettings, *, migrate: bool = True) -> Store:
    """Connect to the configured database and, unless `migrate` is false, upgrade its schema to head.

    For SQLite the parent directory is created (when migrating) and each connection uses WAL journaling,
    `synchronous=NORMAL` (durable across a process crash; an OS crash may lose the last transactions) and the
    configured busy timeout. With `migrate=False` (read-only tools such as `portico audit verify`) a missing
    database is an error rather than silently created empty.

    Raises:
        StoreError: the database cannot be reached, the schema cannot be migrated, or (with `migrate=False`)
            the database does not exist or was never migrated.
    """
    path = settings.sqlite_path
    if path is not None:
        if migrate:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.is_file():
            raise StoreError(f"No database at {settings.redacted_url()}", detail=f"{path} does not exist")
    engine = _create_engine(settings)
    store = Store(engine, settings)
    try:
        async with engine.begin() as conn:
            if migrate:
                await conn.run_sync(_upgrade_to_head)
            else:
                await conn.run_sync(_require_head)
    except SQLAlchemyError as exc:
        await engine.dispose()
        raise StoreError(detail=f"{settings.redacted_url()}: {exc}") from exc
    except OSError as exc:  # asyncpg raises plain OSError (e.g. connection refused) before any handshake
        await engine.dispose()
        raise StoreError(detail=f"{settings.redacted_url()}: {exc}") from exc
    except StoreError:
        await engine.dispose()
        raise
    return store


def _create_engine(settings: StoreSettings) -> AsyncEngine:
    connect_args: dict[str, Any] = {}
    if settings.dialect == "sqlite":
        connect_args["timeout"] = settings.sqlite_busy_timeout_ms / 1000
    engine = create_async_engine(
        settings.async_url,
        echo=settings.echo,
        connect_args=connect_args,
        pool_pre_ping=settings.dialect != "sqlite",
        hide_parameters=True,  # errors and logs must never carry client data (subjects, tool names, IPs)
    )
    if settings.dialect == "sqlite":
        busy_ms = settings.sqlite_busy_timeout_ms

        @event.listens_for(engine.sync_engine, "connect")
        def _tune_sqlite(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            # WAL lets readers (verify, tail, the admin UI) run while the audit flusher writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            cursor.close()

    return engine


def alembic_config() -> Config:
    """An Alembic `Config` pointing at Portico's migrations (for tests and maintenance tools)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade_to_head(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        # Held until this transaction ends: concurrent replicas serialise here.
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    config = alembic_config()
    config.attributes["connection"] = conn  # env.py migrates on this connection instead of making its own
    command.upgrade(config, "head")


def _require_head(conn: Connection) -> None:
    current = MigrationContext.configure(conn).get_current_heads()
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if not current:
        raise StoreError("The database has no Portico schema", detail="alembic_version is empty or missing")
    if set(current) != set(heads):
        raise StoreError(
            "The database schema is not current; start `portico serve` once to migrate it",
            detail=f"database at {sorted(current)}, code at {sorted(heads)}",
        )

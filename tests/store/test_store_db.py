"""open_store on both backends: engine, SQLite tuning, in-process Alembic migrations."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from portico.store import Store, StoreError, StoreSettings, open_store
from portico.store.db import alembic_config
from portico.store.tables import metadata
from tests.store.backends import reset_pg_schema

pytestmark = pytest.mark.anyio


def _heads() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


async def _current(store: Store) -> set[str]:
    async with store.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads()))


async def test_open_store_migrates_an_empty_database_to_head(store: Store) -> None:
    assert await _current(store) == _heads()
    async with store.engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    assert {"audit_records", "audit_nodes", "alembic_version"} <= tables


async def test_migrating_again_is_a_no_op(store_settings: StoreSettings) -> None:
    for _ in range(3):
        store = await open_store(store_settings)
        assert await _current(store) == _heads()
        await store.close()


async def test_replicas_starting_together_on_postgres_migrate_once(pg_url: str) -> None:
    # One process owns a SQLite file; replicas racing to migrate is a PostgreSQL concern.
    await reset_pg_schema(pg_url)
    store_settings = StoreSettings(url=pg_url)
    stores: list[Store] = []

    async def open_one() -> None:
        stores.append(await open_store(store_settings))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(open_one)
    for store in stores:
        assert await _current(store) == _heads()
        await store.close()


async def test_migrations_create_exactly_the_tables_defined_in_code(store: Store) -> None:
    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with store.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_sqlite_store_creates_its_directory_and_journals_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "p.db"
    store = await open_store(StoreSettings(url=f"sqlite:///{path}", sqlite_busy_timeout_ms=1234))
    try:
        assert path.is_file()
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 1  # NORMAL
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 1234
    finally:
        await store.close()


async def test_opening_without_migrating_refuses_a_database_without_the_schema(store_settings: StoreSettings) -> None:
    with pytest.raises(StoreError):
        await open_store(store_settings, migrate=False)
    if store_settings.sqlite_path is not None:
        assert not store_settings.sqlite_path.exists()  # a read-only tool must not create an empty database
    await (await open_store(store_settings)).close()  # migrate it once...
    store = await open_store(store_settings, migrate=False)  # ...and now it opens
    await store.close()


async def test_unreachable_database_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as caught:
        await open_store(StoreSettings(url="postgresql://u:hunter2@127.0.0.1:1/nothing"))
    assert "hunter2" not in str(caught.value.detail)
    assert "hunter2" not in caught.value.public


async def test_a_dropped_postgres_schema_is_rebuilt_on_the_next_open(pg_url: str) -> None:
    store_settings = StoreSettings(url=pg_url)
    await (await open_store(store_settings)).close()
    await reset_pg_schema(pg_url)
    store = await open_store(store_settings)
    assert await _current(store) == _heads()
    await store.close()

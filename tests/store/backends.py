"""Store fixtures shared by tests/store and tests/audit: every test body runs on SQLite and on PostgreSQL.

PostgreSQL is the real server on 127.0.0.1:5432 (trust auth). Each session creates its own database with
`CREATE DATABASE` and drops it at the end; each test starts from an empty `public` schema.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs; only used to create and drop databases
import pytest

from portico.store import Store, StoreSettings, open_store

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_USERS = ("postgres", "root")


def _in_thread(coro_fn: Any, *args: Any) -> Any:
    """Run a coroutine on its own loop in a worker thread, away from the test's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro_fn(*args)).result(timeout=60)


async def _admin_connect() -> asyncpg.Connection:
    last: Exception | None = None
    for user in PG_USERS:
        try:
            return await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=user, database="test", timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            last = exc
    raise RuntimeError(f"PostgreSQL at {PG_HOST}:{PG_PORT} is not usable (start it with ./dev test): {last}")


async def _create_database(name: str) -> str:
    conn = await _admin_connect()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        return str(await conn.fetchval("SELECT current_user"))
    finally:
        await conn.close()


async def _drop_database(name: str) -> None:
    conn = await _admin_connect()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of this test session's own, as a plain `postgresql://` URL."""
    name = f"portico_test_{os.getpid()}_{secrets.token_hex(3)}"
    user = _in_thread(_create_database, name)
    try:
        yield f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        _in_thread(_drop_database, name)


async def reset_pg_schema(url: str) -> None:
    """Empty the database: drop every table, type and the Alembic version row."""
    settings = StoreSettings(url=url)
    u = settings.async_url
    conn = await asyncpg.connect(host=u.host, port=u.port, user=u.username, database=u.database, timeout=10)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSettings:
    """Settings for an empty database of each backend."""
    if request.param == "sqlite":
        return StoreSettings(url=f"sqlite:///{tmp_path / 'data' / 'portico.db'}")
    url: str = request.getfixturevalue("pg_url")
    await reset_pg_schema(url)
    return StoreSettings(url=url)


@pytest.fixture
async def store(store_settings: StoreSettings) -> AsyncIterator[Store]:
    """An open, migrated store on each backend."""
    opened = await open_store(store_settings)
    try:
        yield opened
    finally:
        await opened.close()

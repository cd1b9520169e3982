"""Fixtures for the SSO tests: a running test issuer, and an audit log on SQLite."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from portico.audit import AuditLog, AuditSettings
from portico.store import Store, StoreSettings, open_store
from tests.support.oidc_issuer import OidcIssuer, serve_asgi


@pytest.fixture
async def issuer() -> AsyncIterator[OidcIssuer]:
    idp = OidcIssuer()
    async with serve_asgi(idp.app, idp.port):
        yield idp


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(StoreSettings(url=f"sqlite:///{tmp_path / 'portico.db'}"))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def audit_log(sqlite_store: Store, tmp_path: Path) -> AsyncIterator[AuditLog]:
    settings = AuditSettings(spool_dir=tmp_path / "audit" / "spool", flush_interval_ms=10)
    async with AuditLog(sqlite_store, settings, env={}) as log:
        yield log

"""Shared fixtures: the anyio backend and a real Portico served by uvicorn on a loopback port."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

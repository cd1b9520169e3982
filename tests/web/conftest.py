"""Fixtures for the web-page tests: one headless Chromium per module, a fresh browser context per test (with
screenshots of its pages under the test's tmp dir when it fails), and a real Portico with `auth: oauth` in
front of the echo fixture, served on a loopback port in the same event loop as the browser.

Module-scoped async fixtures need a module-scoped `anyio_backend` (this overrides tests/conftest.py's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from tests.support.chromium import (
    BrowserSession,
    chromium_available,
    launched_chromium,
    opened_context,
    save_artifacts,
)
from tests.support.portico import Running, make_settings, serve
from tests.upstreams.launch import stdio_argv
from tests.web.flow import REDIRECT, Portal, register_client

NewSession = Callable[..., Awaitable[BrowserSession]]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def chromium(anyio_backend: str) -> AsyncIterator[Browser]:
    if not chromium_available():
        pytest.fail("no Chromium at /usr/bin/chromium (or $PORTICO_CHROMIUM): run tools/install-browser.sh")
    async with launched_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def portal_settings(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp: Path = tmp_path_factory.mktemp("web")
    return make_settings(
        tmp,
        [{"id": "echo", "command": stdio_argv("echo")}],
        auth="oauth",
        identity={"tokens": {"key_file": str(tmp / "signing-keys.json")}},
    )


@pytest.fixture(scope="module")
async def portal(portal_settings: Any, anyio_backend: str) -> AsyncIterator[Portal]:
    """A running Portico, a public client registered by DCR, and a user directory on its store."""
    running: Running
    async with serve(portal_settings) as running:
        client_id = await register_client(running.base)
        yield Portal(running, client_id)


@pytest.fixture
async def new_session(chromium: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[NewSession]:
    """`await new_session(**context_options)`: a fresh browser context whose redirects to the client's callback
    are caught. Every session's pages are saved under tmp_path/browser-<n> when the test fails."""
    sessions: list[BrowserSession] = []
    async with AsyncExitStack() as stack:

        async def make(**options: Any) -> BrowserSession:
            session = await stack.enter_async_context(opened_context(chromium, intercept=REDIRECT, **options))
            sessions.append(session)
            return session

        yield make
        if request.node.stash.get(_FAILED, False):
            for index, session in enumerate(sessions):
                saved = await save_artifacts(session, tmp_path / f"browser-{index}")
                print(f"browser artifacts: {[str(p) for p in saved]}")


@pytest.fixture
async def session(new_session: NewSession) -> BrowserSession:
    """The test's browser context (JavaScript on, as people browse)."""
    return await new_session()

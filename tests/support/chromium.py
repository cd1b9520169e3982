"""A real browser for the web-page tests: Debian's Chromium driven by Playwright (async API), never Playwright's
own browser download (there is no internet in CI, and the point is the browser people run).

    async with launched_chromium() as chromium:                 # one per test module (a fixture)
        async with opened_context(chromium, intercept=REDIRECT_URI) as browser:    # one per test
            page = await browser.context.new_page()
            await page.goto(url)
            ...
            async with browser.to_client(page):
                await page.get_by_role("button", name="Approve").click()
            browser.callbacks            # every URL under `intercept` the browser was sent to
            browser.requests             # every URL any page of the context asked for

`intercept` (a URL prefix: the OAuth client's redirect URI) is where nothing listens: the browser's request to
it is recorded (`callbacks`) and its navigation ends on Chromium's "connection refused" page. (Playwright's
`route` is not used for it: it does not reliably see the target of a redirect.) `.to_client` waits for it.
When a test fails, `save_artifacts` writes every open page as a PNG and an HTML file (tests/web/conftest.py
calls it with the test's tmp dir).

Chromium's flags: no sandbox (CI containers run as root), no GPU, and none of the background traffic it starts on
its own (component updates, sync, QUIC probes, first-run pages) — without them it stalls on DNS lookups offline.
Playwright gives every launch a fresh temporary profile.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
from playwright.async_api import Browser, BrowserContext, Page, Request, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

CHROMIUM = os.environ.get("PORTICO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000  # every Playwright wait (navigation, locator, expect) is bounded by this
CLIENT_WAIT_MS = 5_000


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


@asynccontextmanager
async def launched_chromium() -> AsyncIterator[Browser]:
    """Headless Chromium from `CHROMIUM` (default /usr/bin/chromium; tools/install-browser.sh installs it)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class BrowserSession:
    """One browser context (its own cookies) and what it did."""

    context: BrowserContext
    intercept: str | None
    requests: list[str] = field(default_factory=list)
    callbacks: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # errors and warnings (CSP violations land here)

    @asynccontextmanager
    async def to_client(self, page: Page) -> AsyncIterator[None]:
        """`async with session.to_client(page): <click>` waits until the page asks for `intercept`. Everything
        is on loopback, so a few seconds is plenty; when the browser stops on the way (a CSP violation, an
        error page), the assertion says where it is and what the console said."""
        assert self.intercept is not None
        prefix = self.intercept
        acting = True
        try:
            async with page.expect_request(lambda r: r.url.startswith(prefix), timeout=CLIENT_WAIT_MS):
                yield
                acting = False
        except PlaywrightTimeoutError:
            if acting:
                raise
            raise AssertionError(
                f"the browser never went to {prefix}; it is at {page.url}; console: {self.console}"
            ) from None

    def callback_params(self) -> dict[str, str]:
        """The query of the one redirect to `intercept` (the OAuth client's callback)."""
        assert len(self.callbacks) == 1, f"expected one redirect to {self.intercept}, got {self.callbacks}"
        return {k: v[0] for k, v in parse_qs(urlsplit(self.callbacks[0]).query).items()}

    def origins(self) -> set[str]:
        """Scheme://host:port of every request the pages made (data: and about: URLs excluded)."""
        out = set()
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https", "ws", "wss"):
                out.add(f"{parts.scheme}://{parts.netloc}")
        return out


@asynccontextmanager
async def opened_context(
    browser: Browser, *, intercept: str | None = None, **options: Any
) -> AsyncIterator[BrowserSession]:
    """A fresh context (`options` go to `Browser.new_context`, e.g. `java_script_enabled=False`)."""
    context = await browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    session = BrowserSession(context, intercept)

    def record(request: Request) -> None:
        session.requests.append(request.url)
        if intercept is not None and request.url.startswith(intercept):
            session.callbacks.append(request.url)

    context.on("request", record)
    context.on("console", lambda m: session.console.append(m.text) if m.type in ("error", "warning") else None)
    try:
        yield session
    finally:
        await context.close()


async def save_artifacts(session: BrowserSession, directory: Path) -> list[Path]:
    """A screenshot and the HTML of every open page of `session`, for a failed test; the files written."""
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for index, page in enumerate(session.context.pages):
        try:
            png, html = directory / f"page-{index}.png", directory / f"page-{index}.html"
            await page.screenshot(path=png, full_page=True, timeout=5_000)
            await anyio.Path(html).write_text(f"<!-- {page.url} -->\n{await page.content()}", encoding="utf-8")
            written += [png, html]
        except PlaywrightError:
            continue  # a page that crashed or closed: nothing to save
    await anyio.Path(directory / "requests.txt").write_text("\n".join(session.requests), encoding="utf-8")
    return written

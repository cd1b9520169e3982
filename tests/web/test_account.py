"""The self-service account page in a real Chromium: signed in through an ordinary OAuth sign-in, a person sets up
an authenticator app; the QR code is inline SVG that renders under the pages' strict CSP, with no console
violation and no request anywhere but Portico."""

from __future__ import annotations

import html
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import expect

from portico.identity.totp import decode_secret, totp
from tests.support.chromium import BrowserSession
from tests.web.flow import PASSWORD, REDIRECT, Portal, pkce

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def test_the_enrolment_page_renders_its_qr_code_as_inline_svg_under_the_csp_and_fetches_nothing(
    portal: Portal, session: BrowserSession
) -> None:
    await portal.add_user("quinn")
    page = await session.context.new_page()
    _, challenge = pkce()
    await page.goto(portal.authorize_url(challenge, "st-account"))
    await page.get_by_label("Username").fill("quinn")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    async with session.to_client(page):
        await page.get_by_role("button", name="Approve").click()

    page = await session.context.new_page()  # the first one ends on the (unserved) client callback
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    await page.goto(f"{portal.base}/account/security")
    await expect(page).to_have_title("Account security")
    await expect(page.locator("form input[type=hidden][name=csrf]")).to_have_count(1)
    async with page.expect_response(lambda r: r.url.endswith("/account/security/totp/enrol")) as enrolled:
        await page.get_by_role("button", name="Set up an authenticator app").click()
    await expect(page).to_have_title("Set up an authenticator app")

    qr = page.locator(".qr svg")
    await expect(qr).to_be_visible()
    box = await qr.bounding_box()
    assert box is not None
    assert box["width"] > 100
    assert box["height"] > 100  # drawn, not collapsed: the inline SVG was not blocked
    headers = await (await enrolled.value).all_headers()
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"  # the page holds the secret

    uri = html.unescape(await page.locator("code").inner_text())
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    await page.get_by_label("Code").fill(totp(decode_secret(secret), time.time()))
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Turn on").click()
    await expect(page.get_by_role("status")).to_have_text(re.compile("now active"))

    assert problems == []  # no CSP violation: the SVG, the inline style, the form posts
    elsewhere = [url for url in session.requests if not url.startswith((portal.base + "/", REDIRECT))]
    assert elsewhere == []
    assert (await portal.directory().get_user("quinn")).mfa == "active"

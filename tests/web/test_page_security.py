"""What the sign-in pages promise about themselves, checked in a real Chromium: they work without JavaScript,
load nothing from anywhere but Portico, trip no Content-Security-Policy violation, are sent with CSP, framing
and caching headers (and a framing attempt shows nothing), and a form's tokens are worthless in another
browser."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, Response, expect

from tests.support.chromium import BrowserSession
from tests.web.conftest import NewSession
from tests.web.flow import PASSWORD, REDIRECT, Portal, pkce

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def sign_in(page: Page, username: str) -> None:
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()


async def test_the_whole_flow_works_without_javascript_and_stays_on_portico_with_safe_headers(
    portal: Portal, new_session: NewSession
) -> None:
    await portal.add_user("grace")
    session = await new_session(java_script_enabled=False)
    page = await session.context.new_page()
    documents: list[Response] = []
    page.on("response", lambda r: documents.append(r) if r.request.resource_type == "document" else None)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    verifier, challenge = pkce()

    await page.goto(portal.authorize_url(challenge, "st-nojs"))
    await expect(page).to_have_title("Sign in")
    await expect(page.locator("form input[type=hidden][name=csrf]")).to_have_count(1)
    await sign_in(page, "grace")
    await expect(page).to_have_title("Allow access?")
    await expect(page.locator("form input[type=hidden][name=csrf]")).to_have_count(1)
    async with session.to_client(page):
        await page.get_by_role("button", name="Approve").click()

    assert session.callback_params()["state"] == "st-nojs"
    tokens = await portal.exchange(session.callback_params()["code"], verifier)
    assert "result" in await portal.list_tools(tokens["access_token"])
    assert problems == []  # no CSP violation (the inline style, the form posts, the redirect to the client)
    elsewhere = [url for url in session.requests if not url.startswith((portal.base + "/", REDIRECT))]
    assert elsewhere == []
    pages = [r for r in documents if r.url.startswith(portal.base) and r.status in (200, 401)]
    assert len(pages) >= 2  # the sign-in and the consent page
    for response in pages:
        headers = await response.all_headers()
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp, response.url
        assert "script-src" not in csp  # scripts fall under default-src 'none'
        assert headers["x-frame-options"] == "DENY" or "frame-ancestors 'none'" in csp, response.url
        assert headers["cache-control"] == "no-store", response.url
        assert headers["content-type"].startswith("text/html"), response.url


async def test_a_framed_sign_in_page_shows_nothing(portal: Portal, session: BrowserSession) -> None:
    _, challenge = pkce()
    page = await session.context.new_page()
    await page.goto(portal.authorize_url(challenge, "st-frame"))
    await expect(page).to_have_title("Sign in")
    login_url = page.url
    framing = await session.context.new_page()

    await framing.set_content(f'<iframe id="f" src="{login_url}" width="600" height="400"></iframe>')

    await expect(framing.frame_locator("#f").locator("input")).to_have_count(0)
    assert [f.url.startswith(portal.base) for f in framing.frames[1:]] == [False]  # Chromium's error page instead


async def replay(page: Page, fields: dict[str, str]) -> Response:
    """Overwrite the hidden fields of the page's form with `fields` and submit it as `fields`'s owner would."""
    for name, value in fields.items():
        await page.locator(f'input[type=hidden][name="{name}"]').evaluate("(el, v) => { el.value = v }", value)
    await page.get_by_label("Username").fill("heidi")
    await page.get_by_label("Password").fill(PASSWORD)
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.get_by_role("button", name="Sign in").click()
    return await posted.value


async def hidden_fields(page: Page) -> dict[str, str]:
    names = ("request", "csrf")
    return {n: await page.locator(f'input[type=hidden][name="{n}"]').get_attribute("value") or "" for n in names}


@pytest.mark.parametrize("taken", [("request", "csrf"), ("csrf",)], ids=["whole-form", "csrf-token-only"])
async def test_a_form_replayed_in_another_browser_is_refused(
    portal: Portal, new_session: NewSession, taken: tuple[str, ...]
) -> None:
    _, challenge = pkce()
    victim, attacker = await new_session(), await new_session()
    victim_page, attacker_page = await victim.context.new_page(), await attacker.context.new_page()
    for page, state in ((victim_page, "st-v"), (attacker_page, "st-a")):
        await page.goto(portal.authorize_url(challenge, state))
        await expect(page).to_have_title("Sign in")
    stolen = await hidden_fields(victim_page)

    response = await replay(attacker_page, {name: stolen[name] for name in taken})

    assert response.status == 403
    await expect(attacker_page).to_have_title("Cannot continue")
    assert attacker.callbacks == []
    assert victim.callbacks == []

"""Signing in through the authorization server's pages in a real Chromium: password, TOTP, consent (approve and
deny), and the keyboard. The client is registered by DCR; its redirect URI is caught by the browser context; the
code it receives is exchanged for a token that then lists the tools on Portico's /mcp endpoint."""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Page, expect

from portico.identity.totp import decode_secret, totp
from tests.support.chromium import BrowserSession
from tests.web.flow import CLIENT_NAME, PASSWORD, REDIRECT, Portal, claims_of, pkce

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def open_sign_in(session: BrowserSession, portal: Portal, challenge: str, state: str) -> Page:
    page = await session.context.new_page()
    await page.goto(portal.authorize_url(challenge, state))
    await expect(page).to_have_title("Sign in")
    return page


async def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def unlabelled_fields(page: Page) -> list[str]:
    """Names of the visible form fields no <label> names."""
    return list(
        await page.eval_on_selector_all(
            "input:not([type=hidden]), select, textarea",
            "fields => fields.filter(f => f.labels.length === 0 || !f.labels[0].textContent.trim()).map(f => f.name)",
        )
    )


async def test_a_person_signs_in_approves_and_the_client_lists_tools_with_the_token(
    portal: Portal, session: BrowserSession
) -> None:
    await portal.add_user("alice", groups=["eng"])
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(12)
    page = await open_sign_in(session, portal, challenge, state)
    await expect(page.get_by_text(f"to continue to {CLIENT_NAME}")).to_be_visible()

    await sign_in(page, "alice")

    await expect(page).to_have_title("Allow access?")
    body = page.locator("body")
    await expect(body).to_contain_text(CLIENT_NAME)
    await expect(body).to_contain_text(REDIRECT)
    await expect(body).to_contain_text(portal.running.url)  # the resource
    await expect(page.get_by_role("listitem")).to_have_text(["mcp"])  # the scopes
    await expect(body).to_contain_text("alice")
    async with session.to_client(page):
        await page.get_by_role("button", name="Approve").click()

    params = session.callback_params()
    assert set(params) == {"code", "state", "iss"}
    assert params["state"] == state
    assert params["iss"] == portal.base
    tokens = await portal.exchange(params["code"], verifier)
    claims = claims_of(tokens["access_token"])
    assert (claims["sub"], claims["aud"], claims["amr"]) == ("alice", portal.running.url, ["pwd"])
    answer = await portal.list_tools(tokens["access_token"])
    assert "echo" in {tool["name"].split("__")[-1] for tool in answer["result"]["tools"]}, answer


async def test_a_wrong_password_stays_on_the_page_and_says_the_same_as_for_an_unknown_user(
    portal: Portal, session: BrowserSession
) -> None:
    await portal.add_user("bob")
    _, challenge = pkce()
    page = await open_sign_in(session, portal, challenge, "st")
    answers = []
    for username in ("bob", "nobody-by-that-name"):
        async with page.expect_response(lambda r: r.request.method == "POST") as posted:
            await sign_in(page, username, "not the right password at all")
        response = await posted.value
        await expect(page).to_have_title("Sign in")
        alert = page.get_by_role("alert")
        await expect(alert).to_be_visible()
        answers.append((response.status, await alert.inner_text()))
        await expect(page.get_by_label("Password")).to_have_value("")  # the password is never sent back
        await expect(page.get_by_label("Username")).to_have_value(username)
    assert answers[0] == answers[1]
    assert answers[0][0] == 401
    assert session.callbacks == []


async def test_a_user_with_totp_gets_the_code_page_a_wrong_code_is_refused_and_the_token_says_otp(
    portal: Portal, session: BrowserSession
) -> None:
    directory = portal.directory()
    await portal.add_user("carol")
    uri = await directory.begin_totp_enrolment("carol")
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    key = decode_secret(secret)
    # Confirm with the previous step's code (inside the ±1 step window), so the current one is still unspent.
    assert await directory.confirm_totp("carol", totp(key, time.time() - 30))
    verifier, challenge = pkce()
    page = await open_sign_in(session, portal, challenge, "st-totp")

    await sign_in(page, "carol")

    await expect(page).to_have_title("Authentication code")
    await expect(page.get_by_label("Password")).to_have_count(0)
    assert PASSWORD not in await page.content()
    valid_now = {totp(key, time.time() + shift) for shift in (-60, -30, 0, 30, 60)}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in valid_now)
    code_field = page.get_by_label("Code")
    await code_field.fill(wrong)
    await page.get_by_role("button", name="Verify").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    await expect(page).to_have_title("Authentication code")

    await code_field.fill(totp(key, time.time()))
    await page.get_by_role("button", name="Verify").click()
    await expect(page).to_have_title("Allow access?")
    async with session.to_client(page):
        await page.get_by_role("button", name="Approve").click()

    tokens = await portal.exchange(session.callback_params()["code"], verifier)
    amr = claims_of(tokens["access_token"])["amr"]
    assert "otp" in amr
    assert "mfa" in amr
    assert "result" in await portal.list_tools(tokens["access_token"])


async def test_deny_on_the_consent_page_sends_access_denied_to_the_client(
    portal: Portal, session: BrowserSession
) -> None:
    await portal.add_user("dave")
    _, challenge = pkce()
    page = await open_sign_in(session, portal, challenge, "st-deny")
    await sign_in(page, "dave")
    await expect(page).to_have_title("Allow access?")

    async with session.to_client(page):
        await page.get_by_role("button", name="Deny").click()

    params = session.callback_params()
    assert params["error"] == "access_denied"
    assert params["state"] == "st-deny"
    assert params["iss"] == portal.base
    assert "code" not in params


async def test_every_field_is_labelled_and_the_keyboard_alone_completes_the_sign_in(
    portal: Portal, session: BrowserSession
) -> None:
    await portal.add_user("erin")
    _, challenge = pkce()
    page = await open_sign_in(session, portal, challenge, "st-keys")
    assert await page.locator("html").get_attribute("lang") == "en"
    assert await unlabelled_fields(page) == []
    await expect(page.get_by_label("Username")).to_be_focused()  # autofocus: typing starts at once

    await page.keyboard.type("erin")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Password")).to_be_focused()
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    await page.keyboard.press("Enter")

    await expect(page).to_have_title("Allow access?")
    assert await page.locator("html").get_attribute("lang") == "en"
    assert await unlabelled_fields(page) == []
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Approve")).to_be_focused()
    async with session.to_client(page):
        await page.keyboard.press("Enter")
    assert "code" in session.callback_params()


async def test_enter_in_the_password_field_submits_the_sign_in(portal: Portal, session: BrowserSession) -> None:
    await portal.add_user("frank")
    _, challenge = pkce()
    page = await open_sign_in(session, portal, challenge, "st-enter")
    await page.get_by_label("Username").fill("frank")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Password").press("Enter")
    await expect(page).to_have_title("Allow access?")

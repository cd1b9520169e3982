"""Self-service TOTP at /account/security, against a real Portico with `auth: oauth`: a browser signed in through
an ordinary OAuth sign-in enrols an authenticator (the code is computed from the secret on the page), the next
sign-in asks for a code and the token says `otp`; removing it takes the password and a current code; nothing
works without a session or with another browser's form; every action is audited."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from portico.audit import verify as reading
from portico.identity.passwords import Argon2Params, PasswordHasher
from portico.identity.totp import decode_secret, hotp, time_step
from portico.identity.users import UserDirectory
from tests.support.browser import FormBrowser, Page
from tests.support.portico import Running, make_settings, serve
from tests.upstreams.launch import stdio_argv

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"
REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture
async def portal(tmp_path: Path) -> AsyncIterator[Running]:
    settings = make_settings(
        tmp_path,
        [{"id": "echo", "command": stdio_argv("echo")}],
        auth="oauth",
        identity={"tokens": {"key_file": str(tmp_path / "keys.json")}},
        vault={"key_file": str(tmp_path / "vault.key")},
    )
    async with serve(settings) as running:
        for username in ("alice", "bob"):
            await directory(running).add_user(username, PASSWORD)
        yield running


def directory(running: Running) -> UserDirectory:
    portico = running.portico
    assert portico.store is not None
    assert portico.vault is not None
    return UserDirectory(portico.store, portico.vault, hasher=PasswordHasher(Argon2Params(1, 1024)))


# ------------------------------------------------------------------------------------ the OAuth client's side


async def authorize(running: Running, browser: FormBrowser) -> tuple[Page, str, str]:
    """Register a public client, open its authorization request; the first page, the client id and the PKCE
    verifier."""
    registered = await browser.http.post(
        f"{running.base}/oauth/register", json={"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}
    )
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = httpx2.QueryParams(
        {
            "response_type": "code",
            "client_id": registered.json()["client_id"],
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": running.url,
        }
    )
    client_id = str(registered.json()["client_id"])
    return await browser.open(f"{running.base}/oauth/authorize?{query}"), client_id, verifier


async def sign_in(running: Running, browser: FormBrowser, username: str, code: str | None = None) -> dict[str, Any]:
    """A whole OAuth sign-in in `browser` (password, the code when asked, approve); the access token's claims."""
    page, client_id, verifier = await authorize(running, browser)
    page = await browser.submit(page.form("password"), {"username": username, "password": PASSWORD})
    if code is not None:
        assert "code" in page.forms[0].inputs, page.text
        page = await browser.submit(page.form("code"), {"code": code})
    page = await browser.submit(page.form("decision"), button="approve")
    callback = {k: v[0] for k, v in parse_qs(urlsplit(page.callback or "").query).items()}
    form = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "code": callback["code"],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    token = await browser.http.post(f"{running.base}/oauth/token", data=form)
    assert token.status_code == 200, token.text
    segment = token.json()["access_token"].split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


# ------------------------------------------------------------------------------------ the account pages


def secret_on(page: Page) -> str:
    match = re.search(r"<code>(otpauth://[^<]+)</code>", page.text)
    assert match, page.text
    return parse_qs(urlsplit(html.unescape(match.group(1))).query)["secret"][0]


def code(secret: str, step: int) -> str:
    return hotp(decode_secret(secret), step)


def now_step() -> int:
    return time_step(time.time())


def wrong_code(secret: str) -> str:
    """Six digits valid for no step near now."""
    near = {code(secret, s) for s in range(now_step() - 3, now_step() + 4)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in near)


async def security(running: Running, browser: FormBrowser) -> Page:
    return await browser.open(f"{running.base}/account/security")


async def enrol(running: Running, browser: FormBrowser) -> tuple[Page, str]:
    """Start enrolment from the account page; the enrolment page and the secret it shows."""
    page = await security(running, browser)
    assert "not set up" in page.text, page.text
    page = await browser.submit(page.form())
    assert page.status == 200, page.text
    return page, secret_on(page)


async def mfa_of(running: Running, username: str) -> str:
    return (await directory(running).get_user(username)).mfa


async def audit(running: Running, method: str) -> list[tuple[str, str, str | None]]:
    portico = running.portico
    assert portico.audit is not None
    assert portico.store is not None
    await portico.audit.flush()
    records = [r async for batch in reading.tail(portico.store, 500) for r in batch]
    return [(r.subject, r.outcome, r.reason) for r in records if r.method == method]


def browser() -> FormBrowser:
    return FormBrowser(stop_at=REDIRECT)


# ------------------------------------------------------------------------------------ tests


async def test_an_enrolled_authenticator_is_asked_for_at_the_next_sign_in_and_the_token_says_otp(
    portal: Running,
) -> None:
    async with browser() as alice:
        assert "otp" not in (await sign_in(portal, alice, "alice"))["amr"]
        page, secret = await enrol(portal, alice)
        assert "<svg" in page.text
        assert "otpauth://totp/" in page.text
        step = now_step()
        page = await alice.submit(page.form("code"), {"code": code(secret, step), "password": PASSWORD})
        assert page.status == 200, page.text
        assert page.url.startswith(f"{portal.base}/account/security")
        assert "now active" in page.text
        assert "Remove authenticator" in page.text
    assert await mfa_of(portal, "alice") == "active"

    async with browser() as fresh:
        claims = await sign_in(portal, fresh, "alice", code=code(secret, step + 1))
    assert "otp" in claims["amr"]


async def test_a_wrong_code_or_password_does_not_turn_the_authenticator_on(portal: Running) -> None:
    async with browser() as alice:
        await sign_in(portal, alice, "alice")
        page, secret = await enrol(portal, alice)
        refused = await alice.submit(page.form("code"), {"code": wrong_code(secret), "password": PASSWORD})
        assert refused.status == 401
        assert "not accepted" in refused.text
        assert await mfa_of(portal, "alice") == "pending"
        refused = await alice.submit(page.form("code"), {"code": code(secret, now_step()), "password": "wrong"})
        assert refused.status == 401
        assert await mfa_of(portal, "alice") == "pending"
        page = await alice.submit(refused.form("code"), {"code": code(secret, now_step()), "password": PASSWORD})
        assert "now active" in page.text
    assert await mfa_of(portal, "alice") == "active"
    assert await audit(portal, "account.totp_confirm") == [
        ("alice", "denied", "bad_otp"),
        ("alice", "denied", "bad_credentials"),
        ("alice", "ok", None),
    ]


async def test_removing_the_authenticator_takes_the_password_and_a_current_code(portal: Running) -> None:
    async with browser() as alice:
        await sign_in(portal, alice, "alice")
        page, secret = await enrol(portal, alice)
        step = now_step()
        page = await alice.submit(page.form("code"), {"code": code(secret, step), "password": PASSWORD})
        remove = page.form("code")

        for values in (
            {"password": PASSWORD, "code": ""},
            {"password": PASSWORD, "code": wrong_code(secret)},
            {"password": PASSWORD, "code": code(secret, step)},  # already used to confirm: never again
            {"password": "not the password", "code": code(secret, step + 1)},
        ):
            refused = await alice.submit(remove, values)
            assert refused.status == 401, values
            assert await mfa_of(portal, "alice") == "active"

        page = await alice.submit(remove, {"password": PASSWORD, "code": code(secret, step + 1)})
        assert "was removed" in page.text
        assert "not set up" in page.text
    assert await mfa_of(portal, "alice") == "none"
    async with browser() as fresh:
        assert (await sign_in(portal, fresh, "alice"))["amr"] == ["pwd"]
    assert [outcome for _, outcome, _ in await audit(portal, "account.totp_remove")] == ["denied"] * 4 + ["ok"]


async def test_enrolment_is_refused_while_an_authenticator_is_active(portal: Running) -> None:
    async with browser() as alice:
        await sign_in(portal, alice, "alice")
        page, secret = await enrol(portal, alice)
        start = next(f for f in page.forms if f.action.endswith("/totp/enrol"))  # "start again", kept for later
        page = await alice.submit(page.form("code"), {"code": code(secret, now_step()), "password": PASSWORD})
        again = await alice.submit(start)
        assert again.status == 409
        assert "otpauth://" not in again.text
    assert ("alice", "denied", "already_active") in await audit(portal, "account.totp_enrol")


async def test_without_a_session_the_page_says_to_sign_in_and_nothing_can_be_enrolled(portal: Running) -> None:
    async with browser() as stranger:
        page = await security(portal, stranger)
        assert page.status == 401
        assert "Sign in from your MCP client" in page.text
        assert page.forms == []
        posted = await stranger.http.post(f"{portal.base}/account/security/totp/enrol", data={"csrf": "x"})
        assert posted.status_code == 401
        assert "otpauth://" not in posted.text
    assert await mfa_of(portal, "alice") == "none"
    assert ("anonymous", "denied", "no_session") in await audit(portal, "account.totp_enrol")


async def test_a_form_replayed_from_another_browser_is_refused(portal: Running) -> None:
    async with browser() as alice, browser() as bob, browser() as stranger:
        await sign_in(portal, alice, "alice")
        await sign_in(portal, bob, "bob")
        form = (await security(portal, alice)).form()

        from_bob = await bob.submit(form)
        assert from_bob.status == 403
        assert "otpauth://" not in from_bob.text
        from_stranger = await stranger.submit(form)
        assert from_stranger.status == 401
        assert "otpauth://" not in from_stranger.text
        without_token = await alice.http.post(form.action, data={"csrf": ""})
        assert without_token.status_code == 403
    assert await mfa_of(portal, "alice") == "none"
    assert await mfa_of(portal, "bob") == "none"
    assert ("bob", "denied", "bad_csrf") in await audit(portal, "account.totp_enrol")


async def test_every_account_action_is_audited_with_its_subject(portal: Running) -> None:
    async with browser() as alice:
        await sign_in(portal, alice, "alice")
        page, secret = await enrol(portal, alice)
        step = now_step()
        page = await alice.submit(page.form("code"), {"code": code(secret, step), "password": PASSWORD})
        await alice.submit(page.form("code"), {"password": PASSWORD, "code": code(secret, step + 1)})
    assert await audit(portal, "account.totp_enrol") == [("alice", "ok", None)]
    assert await audit(portal, "account.totp_confirm") == [("alice", "ok", None)]
    assert await audit(portal, "account.totp_remove") == [("alice", "ok", None)]

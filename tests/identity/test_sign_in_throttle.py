"""Password spraying: after too many failed sign-ins from one client address, that address is refused for a
while whatever account it tries, before any password is checked; the address is the one the connection
context resolves (X-Forwarded-For counts only from a trusted proxy), so clients behind one proxy are told
apart and a client cannot dodge the limit by claiming another address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from portico.audit import verify as reading
from portico.identity.passwords import Argon2Params, PasswordHasher
from portico.identity.users import UserDirectory
from tests.support.browser import FormBrowser, Page
from tests.support.oauth import REDIRECT, submit_password
from tests.support.portico import Running, make_settings, serve
from tests.upstreams.launch import stdio_argv

pytestmark = pytest.mark.anyio
PASSWORD = "the-right-long-password"
LIMIT = 3


@pytest.fixture
async def portal(tmp_path: Path) -> AsyncIterator[Running]:
    settings = make_settings(
        tmp_path,
        [{"id": "echo", "command": stdio_argv("echo")}],
        auth="oauth",
        identity={
            "tokens": {"key_file": str(tmp_path / "keys.json")},
            "server": {"failed_sign_ins_per_address": LIMIT},
        },
        network={"trusted_proxies": ["127.0.0.1/32"]},  # the test plays a proxy on loopback
        vault={"key_file": str(tmp_path / "vault.key")},
    )
    async with serve(settings) as running:
        portico = running.portico
        assert portico.store is not None
        assert portico.vault is not None
        users = UserDirectory(portico.store, portico.vault, hasher=PasswordHasher(Argon2Params(1, 1024)))
        for name in ("alice", "bob", "carol", "dave"):
            await users.add_user(name, PASSWORD)
        yield running


async def sign_in(running: Running, username: str, password: str, client_ip: str) -> Page:
    headers = {"x-forwarded-for": client_ip}
    async with FormBrowser(stop_at=REDIRECT, headers=headers) as browser:
        return await submit_password(browser, running.base, running.url, username, password)


async def test_an_address_that_fails_too_often_is_refused_for_every_account_and_others_are_not(
    portal: Running,
) -> None:
    sprayer, neighbour = "203.0.113.7", "203.0.113.8"
    for name in ("alice", "bob", "carol"):  # one wrong guess per account: no account lockout
        assert (await sign_in(portal, name, "Winter2026!", sprayer)).status == 401
    refused = await sign_in(portal, "dave", PASSWORD, sprayer)  # even the right password
    assert refused.status == 429
    assert "Too many failed sign-ins" in refused.text
    allowed = await sign_in(portal, "dave", PASSWORD, neighbour)  # another client behind the same proxy
    assert allowed.status == 200
    assert allowed.form("decision")
    records = await audit(portal)
    denied = [r for r in records if r.method == "oauth.login" and r.outcome == "denied"]
    assert [r.ip for r in denied] == [sprayer] * 4
    assert denied[-1].reason == "throttled"


async def audit(running: Running) -> list[Any]:
    portico = running.portico
    assert portico.audit is not None
    assert portico.store is not None
    await portico.audit.flush()
    return [record async for batch in reading.tail(portico.store, 500) for record in batch]

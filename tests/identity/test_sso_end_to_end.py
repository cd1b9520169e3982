"""Signing in through an external IdP, end to end: the SDK's OAuth client provider against Portico, the person
choosing "Sign in with Okta" on Portico's page, the (real, loopback) OIDC issuer approving, Portico mapping the
IdP's groups and continuing to consent; the token's subject and groups come from the IdP, policy applies them,
and the sign-in is audited. Machine clients get tokens by client credentials with a secret from the vault."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult

from portico.audit import verify as reading
from portico.config import Settings
from portico.store import open_store
from portico.vault import Vault
from tests.support.browser import FormBrowser
from tests.support.oauth import REDIRECT, VERIFIER, MemoryStorage, authorize_url, register, sdk_provider
from tests.support.oidc_issuer import OidcIssuer, serve_asgi
from tests.support.portico import Running, free_port, make_settings, serve
from tests.support.wire import modern_call, rpc_answer
from tests.upstreams.launch import stdio_argv

pytestmark = pytest.mark.anyio
POLICY = {"rules": [{"id": "eng-only", "effect": "permit", "groups": ["eng"]}]}


@pytest.fixture
async def idp() -> AsyncIterator[OidcIssuer]:
    issuer = OidcIssuer()
    async with serve_asgi(issuer.app, issuer.port):
        yield issuer


def portal_settings(tmp_path: Path, idp: OidcIssuer, port: int, **extra: Any) -> Settings:
    idp.redirect_uris.append(f"http://127.0.0.1:{port}/login/sso/okta/callback")
    provider = {
        "id": "okta",
        "display_name": "Okta",
        "issuer": idp.issuer,
        "client_id": idp.client_id,
        "client_secret": "${env:PORTICO_TEST_SSO_SECRET}",
        "group_map": {"g-eng": "eng"},
    }
    return make_settings(
        tmp_path,
        [{"id": "echo", "command": stdio_argv("echo")}],
        auth="oauth",
        listen={"port": port},
        identity={
            "tokens": {"key_file": str(tmp_path / "keys.json")},
            "sso": [provider],
            "sso_state_key_file": str(tmp_path / "sso.key"),
            **extra,
        },
        vault={"key_file": str(tmp_path / "vault.key")},
        policy=POLICY,
    )


async def test_a_person_signs_in_through_the_idp_and_gets_the_idps_groups(
    tmp_path: Path, idp: OidcIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTICO_TEST_SSO_SECRET", idp.client_secret)
    settings = portal_settings(tmp_path, idp, free_port())
    callback: dict[str, str] = {}

    async def redirect_handler(authorize_url: str) -> None:
        async with FormBrowser(stop_at=REDIRECT) as browser:
            page = await browser.open(authorize_url)
            page = await browser.open(page.link("Okta"))  # the IdP approves and sends the browser back
            page = await browser.submit(page.form("decision"), button="approve")
            callback.update(page.callback_params)

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=callback["code"], state=callback.get("state"), iss=callback.get("iss"))

    async with serve(settings) as running:
        storage = MemoryStorage()
        provider = sdk_provider(running.url, storage, redirect_handler, callback_handler)
        async with (
            httpx2.AsyncClient(auth=provider, timeout=30) as http,
            Client(streamable_http_client(running.url, http_client=http), mode="2026-07-28") as client,
        ):
            names = {tool.name for tool in (await client.list_tools()).tools}
            echoed = await client.call_tool("echo__echo", {"text": "via sso"})
        records = await audit(running)
    assert {"echo__echo", "echo__add"} <= names
    assert not echoed.is_error
    sso = [r for r in records if r.method == "auth.sso"]
    assert [(r.outcome, r.subject) for r in sso] == [("ok", "okta:00u-alice")]
    calls = [r for r in records if r.method == "tools/call"]
    assert calls[-1].subject == "okta:00u-alice"
    assert calls[-1].rule == "eng-only"
    assert "resource" not in idp.sent("/authorize")[0]  # send_resource is off by default (Entra rejects it)


async def test_an_idp_user_outside_the_mapped_groups_sees_nothing(
    tmp_path: Path, idp: OidcIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTICO_TEST_SSO_SECRET", idp.client_secret)
    idp.user.groups = ["g-sales"]
    settings = portal_settings(tmp_path, idp, free_port())
    async with serve(settings) as running, FormBrowser(stop_at=REDIRECT) as browser:
        client_id = await register(browser.http, running.base)
        page = await browser.open(authorize_url(running.base, client_id, running.url))
        page = await browser.open(page.link("Okta"))
        page = await browser.submit(page.form("decision"), button="approve")
        token = await exchange(running, client_id, page.callback_params["code"])
        body, headers = modern_call("tools/list", {})
        async with httpx2.AsyncClient() as http:
            listed = await http.post(running.url, content=body, headers={**headers, "authorization": f"Bearer {token}"})
    assert rpc_answer(listed)["result"]["tools"] == []


async def test_a_machine_client_gets_a_token_by_client_credentials_with_its_secret_from_the_vault(
    tmp_path: Path, idp: OidcIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTICO_TEST_SSO_SECRET", idp.client_secret)
    client = {
        "client_id": "nightly-report",
        "name": "Nightly report",
        "grant_types": ["client_credentials"],
        "secret": "${vault:secret}",
        "subject": "svc-report",
        "groups": ["eng"],
    }
    settings = portal_settings(tmp_path, idp, free_port(), server={"clients": [client]})
    store = await open_store(settings.store, migrate=True)
    try:
        await Vault(store, settings.vault).put("oauth-client:nightly-report", "secret", "report-secret-123")
    finally:
        await store.close()
    async with serve(settings) as running, httpx2.AsyncClient() as http:
        wrong = await http.post(
            f"{running.base}/oauth/token",
            data={"grant_type": "client_credentials", "resource": running.url},
            auth=("nightly-report", "not-the-secret"),
        )
        granted = await http.post(
            f"{running.base}/oauth/token",
            data={"grant_type": "client_credentials", "resource": running.url},
            auth=("nightly-report", "report-secret-123"),
        )
        assert granted.status_code == 200, granted.text
        body, headers = modern_call("tools/list", {})
        token = granted.json()["access_token"]
        listed = await http.post(running.url, content=body, headers={**headers, "authorization": f"Bearer {token}"})
        records = await audit(running)
    assert wrong.status_code == 401
    assert "refresh_token" not in granted.json()
    assert {t["name"] for t in rpc_answer(listed)["result"]["tools"]} >= {"echo__echo"}
    assert any(r.subject == "svc-report" and r.method == "tools/list" for r in records)


# --------------------------------------------------------------------------------------------- helpers


async def exchange(running: Running, client_id: str, code: str) -> str:
    async with httpx2.AsyncClient() as http:
        reply = await http.post(
            f"{running.base}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": client_id,
                "code_verifier": VERIFIER,
                "resource": running.url,
            },
        )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


async def audit(running: Running) -> list[Any]:
    portico = running.portico
    assert portico.audit is not None
    assert portico.store is not None
    await portico.audit.flush()
    return [record async for batch in reading.tail(portico.store, 500) for record in batch]

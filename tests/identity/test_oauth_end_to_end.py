"""The whole of identity-first, as an MCP client meets it: the official SDK client, with its own OAuth client
provider, is refused by `/mcp`, discovers Portico's protected-resource and authorization-server metadata,
registers itself, signs a person in (a browser without JavaScript fills the real sign-in and consent pages),
exchanges the code with PKCE and calls a tool. A second person in another group sees fewer tools and is
denied the others, and the audit log names the rule and the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from typer.testing import CliRunner

from portico.audit import verify as reading
from portico.cli.user import app as user_app
from portico.identity.passwords import Argon2Params, PasswordHasher
from portico.identity.users import UserDirectory
from tests.support.browser import FormBrowser
from tests.support.oauth import REDIRECT, VERIFIER, MemoryStorage, authorize_url, signing_in_as
from tests.support.portico import Running, make_settings, serve
from tests.support.wire import modern_call
from tests.upstreams.launch import stdio_argv

pytestmark = pytest.mark.anyio
PASSWORDS = {"alice": "alice-has-a-long-passphrase", "bob": "bob-has-a-long-passphrase"}
POLICY = {
    "rules": [
        {"id": "eng-everything", "effect": "permit", "groups": ["eng"]},
        {"id": "sales-echo-only", "effect": "permit", "groups": ["sales"], "servers": ["echo"], "tools": ["echo"]},
    ]
}


@pytest.fixture
async def portal(tmp_path: Path) -> AsyncIterator[Running]:
    servers = [{"id": "echo", "command": stdio_argv("echo")}, {"id": "calc", "command": stdio_argv("echo")}]
    settings = make_settings(
        tmp_path,
        servers,
        auth="oauth",
        identity={"tokens": {"key_file": str(tmp_path / "keys.json")}},
        policy=POLICY,
        vault={"key_file": str(tmp_path / "vault.key")},
    )
    async with serve(settings) as running:
        portico = running.portico
        assert portico.store is not None
        assert portico.vault is not None
        users = UserDirectory(portico.store, portico.vault, hasher=PasswordHasher(Argon2Params(1, 1024)))
        await users.add_user("alice", PASSWORDS["alice"], groups=["eng"])
        await users.add_user("bob", PASSWORDS["bob"], groups=["sales"])
        yield running


@asynccontextmanager
async def connected(
    portal: Running, username: str, mode: str, storage: MemoryStorage | None = None, seen: list[str] | None = None
) -> AsyncIterator[Client]:
    storage = storage or MemoryStorage()
    provider = signing_in_as(username, PASSWORDS[username], portal.url, storage, seen if seen is not None else [])
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(portal.url, http_client=http), mode=mode) as client,
    ):
        yield client


@pytest.mark.requirement("identity:sdk-oauth-end-to-end")
@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_the_sdk_client_discovers_registers_signs_in_with_pkce_and_calls_a_tool(
    portal: Running, mode: str
) -> None:
    storage, seen = MemoryStorage(), []
    async with connected(portal, "alice", mode, storage, seen) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("calc__add", {"a": 2, "b": 3})
    assert {"echo__echo", "echo__add", "calc__echo", "calc__add"} <= names
    assert not result.is_error
    assert "5" in str(result.content)
    assert len(seen) == 1, "one sign-in for the whole session"
    authorize = httpx2.URL(seen[0])
    assert authorize.params["code_challenge_method"] == "S256"
    assert authorize.params["resource"] == portal.url
    assert storage.client is not None
    assert storage.client.client_id  # registered dynamically
    assert storage.tokens is not None
    assert storage.tokens.refresh_token


@pytest.mark.requirement("identity:second-user-sees-fewer-tools")
async def test_a_user_in_another_group_sees_fewer_tools_and_is_denied_the_others_with_a_reason_in_the_audit(
    portal: Running,
) -> None:
    async with connected(portal, "bob", "2026-07-28") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        allowed = await client.call_tool("echo__echo", {"text": "hello"})
        with pytest.raises(MCPError, match="no rule permits bob") as denied:
            await client.call_tool("calc__add", {"a": 1, "b": 1})
    assert names == {"echo__echo"}
    assert not allowed.is_error
    assert "rule eng-everything requires group eng" in str(denied.value)

    records = await audit_records(portal)
    refusal = [r for r in records if r.subject == "bob" and r.method == "tools/call" and r.decision == "deny"]
    assert refusal, [(r.subject, r.method, r.decision) for r in records[-10:]]
    assert (refusal[-1].server_id, refusal[-1].target) == ("calc", "add")
    assert refusal[-1].rule is not None
    assert "no rule permits bob" in (refusal[-1].reason or "")
    assert refusal[-1].client_id  # the dynamically registered client
    assert refusal[-1].authenticated_by == "jwt"
    signed_in = [r for r in records if r.method.startswith("oauth.") and r.subject == "bob"]
    assert signed_in, "the sign-in and the token grant are audited too"


async def test_a_token_for_the_portal_is_refused_at_a_single_server_url(portal: Running) -> None:
    storage = MemoryStorage()
    async with connected(portal, "alice", "2026-07-28", storage) as client:
        await client.list_tools()
    assert storage.tokens is not None
    async with httpx2.AsyncClient() as http:
        reply = await http.post(
            portal.server_url("echo"),
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"authorization": f"Bearer {storage.tokens.access_token}", "accept": "application/json"},
        )
    assert reply.status_code == 401
    assert "servers/echo/mcp" in reply.headers["www-authenticate"]


async def audit_records(portal: Running) -> list[Any]:
    portico = portal.portico
    assert portico.audit is not None
    assert portico.store is not None
    await portico.audit.flush()
    return [record async for batch in reading.tail(portico.store, 500) for record in batch]


@pytest.mark.requirement("identity:negative-matrix")
async def test_a_revoked_access_token_is_refused_at_once_and_a_revoked_refresh_token_cannot_renew(
    portal: Running,
) -> None:
    storage = MemoryStorage()
    async with connected(portal, "alice", "2026-07-28", storage) as client:
        await client.list_tools()
    assert storage.tokens is not None
    assert storage.client is not None
    tokens, client_id = storage.tokens, storage.client.client_id
    body, headers = modern_call("tools/list", {})
    bearer = {**headers, "authorization": f"Bearer {tokens.access_token}"}
    async with httpx2.AsyncClient() as http:
        assert (await http.post(portal.url, content=body, headers=bearer)).status_code == 200
        for token in (tokens.access_token, tokens.refresh_token):
            revoked = await http.post(f"{portal.base}/oauth/revoke", data={"token": token, "client_id": client_id})
            assert revoked.status_code == 200
        refused = await http.post(portal.url, content=body, headers=bearer)
        renewed = await http.post(
            f"{portal.base}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens.refresh_token, "client_id": client_id},
        )
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error_description"]
    assert renewed.status_code == 400
    assert renewed.json()["error"] == "invalid_grant"


@pytest.mark.requirement("identity:disable-user-ends-access")
async def test_disabling_a_user_revokes_their_tokens_and_their_browser_session_mints_no_new_ones(
    portal: Running, tmp_path: Path
) -> None:
    storage = MemoryStorage()
    async with connected(portal, "alice", "2026-07-28", storage) as client:
        await client.list_tools()
    assert storage.tokens is not None
    assert storage.client is not None
    async with FormBrowser(stop_at=REDIRECT) as browser:
        page = await browser.open(authorize_url(portal.base, storage.client.client_id, portal.url))
        page = await browser.submit(page.form("password"), {"username": "alice", "password": PASSWORDS["alice"]})
        await browser.submit(page.form("decision"), button="approve")  # the browser now has a sign-in session

        settings = portal.portico.settings
        config = tmp_path / "cli.yaml"
        config.write_text(f"store: {{url: '{settings.store.url}'}}\nvault: {{key_file: '{settings.vault.key_file}'}}\n")
        disabled = await anyio.to_thread.run_sync(
            lambda: CliRunner().invoke(user_app, ["disable", "alice", "--config", str(config)])
        )
        assert disabled.exit_code == 0, disabled.output
        assert "revoked" in disabled.stderr

        body, headers = modern_call("tools/list", {})
        bearer = {**headers, "authorization": f"Bearer {storage.tokens.access_token}"}
        async with httpx2.AsyncClient() as http:

            async def refused() -> bool:
                return (await http.post(portal.url, content=body, headers=bearer)).status_code == 401

            for _ in range(150):  # the running Portico polls revocations every few seconds
                if await refused():
                    break
                await anyio.sleep(0.2)
            else:
                raise AssertionError("the revoked access token was still accepted after 30 s")
            renewed = await http.post(
                f"{portal.base}/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": storage.tokens.refresh_token,
                    "client_id": storage.client.client_id,
                },
            )
        assert renewed.status_code == 400

        # The sign-in session outlives the change; the code it gets must not become a token.
        page = await browser.open(authorize_url(portal.base, storage.client.client_id, portal.url))
        page = await browser.submit(page.form("decision"), button="approve")
        exchanged = await browser.http.post(
            f"{portal.base}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": page.callback_params["code"],
                "redirect_uri": REDIRECT,
                "client_id": storage.client.client_id,
                "code_verifier": VERIFIER,
                "resource": portal.url,
            },
        )
    assert exchanged.status_code == 400
    assert exchanged.json()["error"] == "invalid_grant"

"""Upstreams receive Portico's vault credential, never the client's token (checked on the upstream side)."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from portico.config import ServerSettings
from portico.store import open_store
from portico.upstream.stdio import StdioUpstream
from portico.vault import Vault
from tests.support.portico import make_settings, serve
from tests.support.wire import modern_call, rpc_answer
from tests.upstreams.launch import launched

pytestmark = pytest.mark.anyio
VAULTED = "vaulted-credential-123"


@pytest.mark.requirement("vault:upstream-gets-vault-credential")
@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_the_upstream_receives_the_vault_credential_and_never_the_clients_token(
    tmp_path: Path, transport: str
) -> None:
    async with launched("echo", transport) as url:  # type: ignore[call-overload]
        server = {"id": "echo", "url": url, "headers": {"Authorization": "${vault:token}", "X-Plain": "kept"}}
        if transport == "sse":
            server["transport"] = "sse"
        settings = make_settings(
            tmp_path,
            [server],
            vault={"key_file": str(tmp_path / "vault.key")},
            auth="oauth",
            identity={"tokens": {"key_file": str(tmp_path / "keys.json")}},
        )
        store = await open_store(settings.store)
        await Vault(store, settings.vault).put("server:echo", "token", f"Bearer {VAULTED}")
        await store.close()
        async with serve(settings) as running:
            assert running.portico.token_issuer is not None
            client_token = running.portico.token_issuer.issue("alice", running.url, scopes=["mcp"], client_id="c")
            body, headers = modern_call("tools/call", {"name": "echo__echo", "arguments": {"text": "hi"}})
            async with httpx2.AsyncClient() as http:
                reply = await http.post(
                    running.url, content=body, headers={**headers, "Authorization": f"Bearer {client_token}"}
                )
                assert "result" in rpc_answer(reply), reply.text
            base = url.rsplit("/", 1)[0]
            async with httpx2.AsyncClient() as http:
                received = (await http.get(f"{base}/received")).json()
    calls = [r for r in received if r["method"] == "tools/call"]
    assert calls
    assert all(r["headers"] for r in calls)
    assert all(r["headers"]["authorization"] == f"Bearer {VAULTED}" for r in received if r["headers"])
    assert all(r["headers"]["x-plain"] == "kept" for r in received if r["headers"])
    assert client_token not in str(received)
    assert client_token.split(".")[2] not in str(received)  # not even its signature, in any header or param


async def test_a_stdio_server_gets_its_vault_secret_in_its_environment(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, [], vault={"key_file": str(tmp_path / "vault.key")})
    store = await open_store(settings.store)
    try:
        vault = Vault(store, settings.vault)
        await vault.put("server:tool", "token", VAULTED)
        upstream = StdioUpstream(ServerSettings(id="tool", command=["true"], env={"API_TOKEN": "${vault:token}"}))
        upstream.secrets = vault
        assert (await upstream._environment())["API_TOKEN"] == VAULTED
    finally:
        await store.close()

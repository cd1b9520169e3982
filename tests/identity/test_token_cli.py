"""`portico token issue`: a token for a local user that a real Portico with `auth: oauth` accepts at the URL it
names (and nowhere else), carrying the user's groups; refused for unknown or disabled users and foreign
resources; every issue in the audit log."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from typer.testing import CliRunner, Result

from portico.audit import verify as reading
from portico.cli.main import app
from portico.config import load
from portico.identity.passwords import Argon2Params, PasswordHasher
from portico.identity.users import UserDirectory
from portico.store import open_store
from portico.vault import Vault
from tests.support.portico import free_port, serve
from tests.support.wire import modern_call
from tests.upstreams.launch import stdio_argv

pytestmark = pytest.mark.anyio


@pytest.fixture
def config(tmp_path: Path) -> Path:
    port = free_port()
    path = tmp_path / "portico.yaml"
    path.write_text(
        f"""auth: oauth
listen: {{port: {port}}}
store: {{url: "sqlite:///{tmp_path / "portico.db"}"}}
audit: {{spool_dir: "{tmp_path / "spool"}"}}
vault: {{key_file: "{tmp_path / "vault.key"}"}}
identity:
  tokens: {{key_file: "{tmp_path / "keys.json"}"}}
servers:
  - {{id: echo, command: {json.dumps(stdio_argv("echo"))}}}
policy:
  rules: [{{id: eng, effect: permit, groups: [eng]}}]
"""
    )
    return path


async def add_user(config: Path, username: str, groups: list[str], *, disabled: bool = False) -> None:
    settings = load(config)
    store = await open_store(settings.store, migrate=True)
    try:
        users = UserDirectory(store, Vault(store, settings.vault), hasher=PasswordHasher(Argon2Params(1, 1024)))
        await users.add_user(username, "correct-horse-battery-9", groups=groups)
        if disabled:
            await users.disable_user(username)
    finally:
        await store.close()


async def invoke(*args: str) -> Result:
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(app, list(args)))


def claims(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


async def call(url: str, token: str) -> httpx2.Response:
    body, headers = modern_call("tools/list", {})
    async with httpx2.AsyncClient() as http:
        return await http.post(url, content=body, headers={**headers, "authorization": f"Bearer {token}"})


@pytest.mark.requirement("identity:token-issue-cli")
async def test_an_issued_token_lists_tools_at_its_resource_and_is_audited(config: Path) -> None:
    await add_user(config, "alice", ["eng"])
    result = await invoke("token", "issue", "--config", str(config), "--user", "alice", "--ttl", "120")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    settings = load(config)
    assert claims(token)["groups"] == ["eng"]
    assert claims(token)["aud"] == f"{settings.public_url}/mcp"
    assert claims(token)["exp"] - claims(token)["iat"] == 120
    async with serve(settings) as running:
        listed = await call(running.url, token)
        assert listed.status_code == 200, listed.text
        assert any(t["name"] == "echo__echo" for t in listed.json()["result"]["tools"])
        assert (await call(running.server_url("echo"), token)).status_code == 401
    store = await open_store(settings.store)
    try:
        records = [r async for batch in reading.tail(store, 200) for r in batch]
        assert (await reading.verify(store)).ok
    finally:
        await store.close()
    issued = [r for r in records if r.method == "auth.token_issue"]
    assert len(issued) == 1
    assert issued[0].subject == "alice"
    assert issued[0].target == f"{settings.public_url}/mcp"


async def test_a_token_for_one_servers_url_works_there(config: Path) -> None:
    await add_user(config, "alice", ["eng"])
    settings = load(config)
    url = f"{settings.public_url}/servers/echo/mcp"
    result = await invoke("token", "issue", "-c", str(config), "-u", "alice", "--resource", url)
    assert result.exit_code == 0, result.output
    async with serve(settings) as running:
        assert (await call(running.server_url("echo"), result.stdout.strip())).status_code == 200


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--user", "nobody"], 1, "No user"),
        (["--user", "bob"], 1, "disabled"),
        (["--user", "alice", "--resource", "https://elsewhere.example/mcp"], 2, "not an MCP URL"),
        (["--user", "alice", "--ttl", "999999"], 2, "max_access_ttl_s"),
    ],
)
async def test_no_token_is_printed_for_unknown_or_disabled_users_or_foreign_resources(
    config: Path, args: list[str], code: int, message: str
) -> None:
    await add_user(config, "alice", ["eng"])
    await add_user(config, "bob", ["eng"], disabled=True)
    result = await invoke("token", "issue", "--config", str(config), *args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert result.stdout.strip() == ""


async def test_a_running_portico_follows_a_key_rotation_and_a_zero_grace_rotation_kills_old_tokens(
    config: Path,
) -> None:
    await add_user(config, "alice", ["eng"])
    settings = load(config)
    async with serve(settings) as running:
        before = (await invoke("token", "issue", "-c", str(config), "-u", "alice")).stdout.strip()
        assert (await call(running.url, before)).status_code == 200
        rotated = await invoke("token", "rotate-keys", "-c", str(config))
        assert rotated.exit_code == 0, rotated.output
        after = (await invoke("token", "issue", "-c", str(config), "-u", "alice")).stdout.strip()
        assert json.loads(base64.urlsafe_b64decode(after.split(".")[0] + "==")) != json.loads(
            base64.urlsafe_b64decode(before.split(".")[0] + "==")
        ), "a new kid signs new tokens"
        await eventually_status(running.url, after, 200)  # the new key is picked up
        assert (await call(running.url, before)).status_code == 200  # the old key is in its grace period
        killed = await invoke("token", "rotate-keys", "-c", str(config), "--grace", "0")
        assert killed.exit_code == 0, killed.output
        await eventually_status(running.url, after, 401)  # signed by a key dropped at once
    store = await open_store(settings.store)
    try:
        records = [r async for batch in reading.tail(store, 200) for r in batch]
    finally:
        await store.close()
    assert [r.method for r in records].count("auth.key_rotation") == 2


async def eventually_status(url: str, token: str, status: int) -> None:
    async def reached() -> bool:
        return (await call(url, token)).status_code == status

    for _ in range(150):  # the key watcher polls every 5 s
        if await reached():
            return
        await anyio.sleep(0.1)
    raise AssertionError(f"status {status} not reached")

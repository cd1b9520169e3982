"""`portico connect list | disconnect`: an operator sees who has connected which upstream (never a token) and
removes a user's connection, audited."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner, Result

from portico.audit import verify as reading
from portico.cli.connect import app, parse_tokens_scope
from portico.config import load
from portico.store import open_store
from portico.upstream.oauth_client import TOKENS_NAME, TokenSet
from portico.vault import SecretNotFoundError, Vault

pytestmark = pytest.mark.anyio


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "portico.yaml"
    path.write_text(
        f"""store: {{url: "sqlite:///{tmp_path / "portico.db"}"}}
audit: {{spool_dir: "{tmp_path / "spool"}"}}
vault: {{key_file: "{tmp_path / "vault.key"}"}}
servers:
  - {{id: files, url: "https://files.example/mcp", oauth: {{}}}}
  - {{id: mail, url: "https://mail.example/mcp", oauth: {{}}}}
"""
    )
    return path


def tokens(user: str, expires_at: float | None, scope: str | None) -> TokenSet:
    return TokenSet(f"access-{user}", f"refresh-{user}", expires_at, scope, "https://as", "c", "r", "https://as/t")


async def seed(config: Path) -> None:
    settings = load(config)
    store = await open_store(settings.store, migrate=True)
    try:
        vault = Vault(store, settings.vault)
        await vault.put("user:alice:server:files", TOKENS_NAME, tokens("alice", 1_800_000_000, "files:read").to_json())
        await vault.put("user:bob:server:files", TOKENS_NAME, tokens("bob", None, None).to_json())
        await vault.put("user:ops:team:server:mail", TOKENS_NAME, tokens("ops", None, "mail").to_json())
        await vault.put("user:alice:server:files", "unrelated", "x")
        await vault.put("server:files", "catalog_token", "catalog-secret")
    finally:
        await store.close()


async def invoke(*args: str) -> Result:
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(app, list(args)))


@pytest.mark.requirement("upstream-oauth:connect-cli")
async def test_list_shows_each_connection_with_expiry_and_scope_and_never_a_token(config: Path) -> None:
    await seed(config)
    result = await invoke("list", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "alice\tfiles\t2027-01-15T08:00:00Z\tfiles:read",
        "bob\tfiles\t-\t-",
        "ops:team\tmail\t-\tmail",
    ]
    assert "access-" not in result.output
    assert "refresh-" not in result.output
    only_mail = await invoke("list", "--config", str(config), "--server", "mail")
    assert only_mail.stdout.splitlines() == ["ops:team\tmail\t-\tmail"]


@pytest.mark.requirement("upstream-oauth:connect-cli")
async def test_disconnect_removes_only_that_users_tokens_and_is_audited(config: Path) -> None:
    await seed(config)
    result = await invoke("disconnect", "--config", str(config), "--server", "files", "--user", "alice")
    assert result.exit_code == 0, result.output
    listed = await invoke("list", "--config", str(config))
    assert [line.split("\t")[:2] for line in listed.stdout.splitlines()] == [["bob", "files"], ["ops:team", "mail"]]
    settings = load(config)
    store = await open_store(settings.store)
    try:
        vault = Vault(store, settings.vault)
        with pytest.raises(SecretNotFoundError):
            await vault.get("user:alice:server:files", TOKENS_NAME)
        assert await vault.get("user:alice:server:files", "unrelated") == "x"
        records = [r async for batch in reading.tail(store, 50) for r in batch]
    finally:
        await store.close()
    (record,) = [r for r in records if r.method == "upstream.disconnect"]
    assert (record.subject, record.server_id, record.outcome, record.reason) == ("alice", "files", "ok", "operator")
    assert record.authenticated_by == "operator"
    assert "access-alice" not in repr(record)


async def test_disconnecting_a_user_who_is_not_connected_exits_1(config: Path) -> None:
    await seed(config)
    result = await invoke("disconnect", "--config", str(config), "--server", "mail", "--user", "alice")
    assert result.exit_code == 1
    assert "error:" in result.output


@pytest.mark.parametrize(
    ("scope", "parsed"),
    [
        ("user:alice:server:files", ("alice", "files")),
        ("user:a:server:b:server:files", ("a:server:b", "files")),
        ("user::server:files", None),
        ("user:alice:server:", None),
        ("server:files", None),
        ("user:alice", None),
    ],
)
def test_a_tokens_scope_is_parsed_into_subject_and_server(scope: str, parsed: tuple[str, str] | None) -> None:
    assert parse_tokens_scope(scope) == parsed

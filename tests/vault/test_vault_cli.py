"""`portico vault set|get|list|delete|rotate` through Typer's runner, against both backends, values on stdin."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner, Result

from portico.cli.vault import app
from portico.store import Store
from portico.vault import Vault, VaultSettings
from portico.vault.crypto import parse_key

pytestmark = pytest.mark.anyio

SECRET = "ghp_S3cr3tV4lue-0123456789"


@pytest.fixture
def config(store: Store, tmp_path: Path) -> Path:
    path = tmp_path / "portico.yaml"
    path.write_text(f"store:\n  url: {store.settings.url}\nservers: []\n")
    return path


async def invoke(*args: str, env: dict[str, str], input: str | None = None) -> Result:
    """Run the CLI in a worker thread: each command runs its own event loop, as it does from a shell."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(app, list(args), input=input, env=env))


async def test_set_reads_the_value_from_stdin_and_get_reveals_it(config: Path, key_a: str) -> None:
    env = {"PORTICO_VAULT_KEY": key_a}
    result = await invoke("set", "-c", str(config), "server:github", "token", input=SECRET + "\n", env=env)
    assert result.exit_code == 0, result.output
    assert "stored token in server:github" in result.stderr
    assert SECRET not in result.output
    result = await invoke("get", "-c", str(config), "server:github", "token", "--reveal", env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout == SECRET + "\n"


async def test_the_cli_and_the_library_read_each_others_secrets(
    config: Path, store: Store, tmp_path: Path, key_a: str
) -> None:
    vault = Vault(store, VaultSettings(key_file=tmp_path / "unused.key"), env={"PORTICO_VAULT_KEY": key_a})
    await vault.put("server:github", "token", SECRET)
    result = await invoke(
        "get", "-c", str(config), "server:github", "token", "--reveal", env={"PORTICO_VAULT_KEY": key_a}
    )
    assert result.stdout == SECRET + "\n"
    await invoke("set", "-c", str(config), "server:gitlab", "token", input="glpat", env={"PORTICO_VAULT_KEY": key_a})
    assert await vault.get("server:gitlab", "token") == "glpat"


async def test_get_without_reveal_refuses_and_prints_nothing_on_stdout(config: Path, key_a: str) -> None:
    env = {"PORTICO_VAULT_KEY": key_a}
    await invoke("set", "-c", str(config), "server:github", "token", input=SECRET, env=env)
    result = await invoke("get", "-c", str(config), "server:github", "token", env=env)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--reveal" in result.stderr


async def test_set_refuses_an_empty_value(config: Path, key_a: str) -> None:
    env = {"PORTICO_VAULT_KEY": key_a}
    result = await invoke("set", "-c", str(config), "server:github", "token", input="\n", env=env)
    assert result.exit_code == 2
    assert "empty" in result.stderr
    assert (await invoke("list", "-c", str(config), env=env)).stdout == ""


async def test_list_prints_addresses_and_key_ids_but_no_values(config: Path, key_a: str) -> None:
    env = {"PORTICO_VAULT_KEY": key_a}
    for scope, name in [("server:github", "token"), ("server:gitlab", "token"), ("user:alice:server:github", "x")]:
        await invoke("set", "-c", str(config), scope, name, input=SECRET, env=env)
    result = await invoke("list", "-c", str(config), "server:", env=env)
    assert result.exit_code == 0, result.output
    lines = [line.split("\t")[:3] for line in result.stdout.splitlines()]
    key_id = parse_key(key_a, "a").id
    assert lines == [["server:github", "token", key_id], ["server:gitlab", "token", key_id]]
    assert SECRET not in result.output


async def test_a_missing_secret_exits_1_naming_it(config: Path, key_a: str) -> None:
    env = {"PORTICO_VAULT_KEY": key_a}
    for command in ("get", "delete"):
        args = [command, "-c", str(config), "server:github", "nope"] + (["--reveal"] if command == "get" else [])
        result = await invoke(*args, env=env)
        assert result.exit_code == 1
        assert "No secret 'nope' in scope 'server:github'" in result.stderr


async def test_delete_removes_a_secret(config: Path, key_a: str) -> None:
    env = {"PORTICO_VAULT_KEY": key_a}
    await invoke("set", "-c", str(config), "server:github", "token", input=SECRET, env=env)
    assert (await invoke("delete", "-c", str(config), "server:github", "token", env=env)).exit_code == 0
    assert (await invoke("list", "-c", str(config), env=env)).stdout == ""


@pytest.mark.requirement("vault:rotation")
async def test_rotate_re_encrypts_every_secret_under_the_new_key_from_the_environment(
    config: Path, key_a: str, key_b: str
) -> None:
    for i in range(3):
        await invoke("set", "-c", str(config), f"server:s{i}", "token", input=f"v{i}", env={"PORTICO_VAULT_KEY": key_a})
    result = await invoke("rotate", "-c", str(config), env={"PORTICO_VAULT_KEY": key_a, "PORTICO_VAULT_NEW_KEY": key_b})
    assert result.exit_code == 0, result.output
    new_id = parse_key(key_b, "b").id
    assert f"re-encrypted 3 secrets under key {new_id}" in result.stdout
    assert parse_key(key_a, "a").id in result.stderr  # the key to keep among the previous keys for now
    assert key_b not in result.output
    only_b = {"PORTICO_VAULT_KEY": key_b}
    result = await invoke("get", "-c", str(config), "server:s2", "token", "--reveal", env=only_b)
    assert result.stdout == "v2\n"
    assert all(
        line.split("\t")[2] == new_id
        for line in (await invoke("list", "-c", str(config), env=only_b)).stdout.splitlines()
    )


async def test_rotate_reads_the_new_key_from_a_file_and_needs_one(
    config: Path, tmp_path: Path, key_a: str, key_b: str
) -> None:
    env = {"PORTICO_VAULT_KEY": key_a}
    await invoke("set", "-c", str(config), "server:github", "token", input=SECRET, env=env)
    result = await invoke("rotate", "-c", str(config), env=env)
    assert result.exit_code == 2
    assert "PORTICO_VAULT_NEW_KEY" in result.stderr
    (tmp_path / "new.key").write_text(key_b + "\n")
    result = await invoke("rotate", "-c", str(config), "--new-key-file", str(tmp_path / "new.key"), env=env)
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 secrets" in result.stdout


async def test_a_wrong_key_or_a_bad_scope_ends_as_one_line_with_exit_2(config: Path, key_a: str, key_b: str) -> None:
    await invoke("set", "-c", str(config), "server:github", "token", input=SECRET, env={"PORTICO_VAULT_KEY": key_a})
    result = await invoke(
        "get", "-c", str(config), "server:github", "token", "--reveal", env={"PORTICO_VAULT_KEY": key_b}
    )
    assert result.exit_code == 2
    assert "neither the current key nor a previous one" in result.stderr
    result = await invoke("set", "-c", str(config), "github", "token", input=SECRET, env={"PORTICO_VAULT_KEY": key_a})
    assert result.exit_code == 2
    assert "Invalid secret scope" in result.stderr
    assert "Traceback" not in result.output
    assert SECRET not in result.output


async def test_a_malformed_key_in_the_environment_is_reported_without_echoing_it(config: Path, key_a: str) -> None:
    await invoke("set", "-c", str(config), "server:github", "token", input=SECRET, env={"PORTICO_VAULT_KEY": key_a})
    bad = {"PORTICO_VAULT_KEY": "hunter2hunter2"}
    result = await invoke("get", "-c", str(config), "server:github", "token", "--reveal", env=bad)
    assert result.exit_code == 2
    assert "$PORTICO_VAULT_KEY" in result.stderr
    assert "hunter2" not in result.output


@pytest.mark.requirement("vault:value-never-from-argv")
async def test_a_value_pasted_as_an_argument_or_option_is_refused_without_being_printed(
    config: Path, key_a: str
) -> None:
    env = {"PORTICO_VAULT_KEY": key_a}
    for extra in ([SECRET], [f"--value={SECRET}"], ["--value", SECRET]):
        result = await invoke("set", "-c", str(config), "server:github", "token", *extra, input="x", env=env)
        assert result.exit_code == 2
        assert "never taken from the command line" in result.stderr
        assert SECRET not in result.output
    assert (await invoke("list", "-c", str(config), env=env)).stdout == ""

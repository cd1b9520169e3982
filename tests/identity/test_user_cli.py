"""`portico user …` through Typer's runner, on both backends, passwords on stdin, the production Argon2 cost."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
from typer.testing import CliRunner, Result

from portico.cli.user import app
from portico.identity.totp import decode_secret, totp
from portico.identity.users import AuthFailure, UserDirectory
from portico.store import Store
from portico.vault import Vault

pytestmark = pytest.mark.anyio

PASSWORD = "violet-otter-harbour-42"
OTHER = "amber-falcon-meadow-77"


@pytest.fixture
def config(store: Store, tmp_path: Path) -> Path:
    path = tmp_path / "portico.yaml"
    path.write_text(f"store:\n  url: {store.settings.url}\nvault:\n  key_file: {tmp_path / 'vault.key'}\nservers: []\n")
    return path


@pytest.fixture
def env(vault_key: str) -> dict[str, str]:
    return {"PORTICO_VAULT_KEY": vault_key}


@pytest.fixture
def library(store: Store, vault: Vault) -> UserDirectory:
    """The same directory the CLI writes, seen through the library (production hashing, real clock)."""
    return UserDirectory(store, vault)


async def invoke(*args: str, env: dict[str, str], input: str | None = None) -> Result:
    """Run the CLI in a worker thread: each command runs its own event loop, as it does from a shell."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(app, list(args), input=input, env=env))


async def test_add_reads_the_password_from_stdin_and_the_user_can_sign_in(
    config: Path, env: dict[str, str], library: UserDirectory
) -> None:
    result = await invoke(
        "add",
        "alice",
        "-c",
        str(config),
        "-g",
        "eng",
        "-g",
        "sre",
        "--display-name",
        "Alice L",
        input=PASSWORD + "\n",
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "added user alice in eng, sre" in result.stderr
    assert PASSWORD not in result.output
    signed_in = await library.authenticate("alice", PASSWORD)
    assert (signed_in.subject, signed_in.groups) == ("alice", {"eng", "sre"})
    listed = await invoke("list", "-c", str(config), env=env)
    assert listed.stdout == "alice\talice\tactive\tnone\teng,sre\tAlice L\n"


@pytest.mark.requirement("identity:password-never-from-argv")
async def test_add_refuses_a_password_given_on_the_command_line(config: Path, env: dict[str, str]) -> None:
    result = await invoke("add", "alice", "-c", str(config), PASSWORD, input=PASSWORD, env=env)
    assert result.exit_code == 2
    assert PASSWORD not in result.output
    assert "never taken from the command line" in result.stderr
    assert (await invoke("list", "-c", str(config), env=env)).stdout == ""


@pytest.mark.parametrize(
    ("password", "message"),
    [("short-pw-1\n", "at least 12"), ("password1234", "most common"), ("first-line-ok\nsecond-line", "single line")],
)
async def test_add_refuses_a_weak_or_malformed_password(
    config: Path, env: dict[str, str], password: str, message: str
) -> None:
    result = await invoke("add", "alice", "-c", str(config), input=password, env=env)
    assert result.exit_code == 2
    assert message in result.stderr
    assert password.strip() not in result.output


async def test_passwd_replaces_the_password(config: Path, env: dict[str, str], library: UserDirectory) -> None:
    await invoke("add", "alice", "-c", str(config), input=PASSWORD, env=env)
    result = await invoke("passwd", "alice", "-c", str(config), input=OTHER + "\n", env=env)
    assert result.exit_code == 0, result.output
    assert (await library.authenticate("alice", PASSWORD)).failure is AuthFailure.BAD_CREDENTIALS
    assert (await library.authenticate("alice", OTHER)).ok


async def test_group_commands_add_remove_and_list_memberships(config: Path, env: dict[str, str]) -> None:
    await invoke("add", "alice", "-c", str(config), "-g", "eng", input=PASSWORD, env=env)
    assert (await invoke("add-group", "alice", "ops", "sre", "-c", str(config), env=env)).exit_code == 0
    assert (await invoke("groups", "alice", "-c", str(config), env=env)).stdout == "eng\nops\nsre\n"
    assert (await invoke("remove-group", "alice", "ops", "-c", str(config), env=env)).exit_code == 0
    assert (await invoke("groups", "-c", str(config), env=env)).stdout == "eng\t1\nops\t0\nsre\t1\n"


async def test_disable_and_enable_change_whether_the_user_can_sign_in(
    config: Path, env: dict[str, str], library: UserDirectory
) -> None:
    await invoke("add", "alice", "-c", str(config), input=PASSWORD, env=env)
    assert (await invoke("disable", "alice", "-c", str(config), env=env)).exit_code == 0
    assert (await library.authenticate("alice", PASSWORD)).failure is AuthFailure.DISABLED
    assert "\tdisabled\t" in (await invoke("list", "-c", str(config), env=env)).stdout
    assert (await invoke("enable", "alice", "-c", str(config), env=env)).exit_code == 0
    assert (await library.authenticate("alice", PASSWORD)).ok


async def test_totp_enrol_prints_the_uri_and_confirm_activates_it(
    config: Path, env: dict[str, str], library: UserDirectory
) -> None:
    await invoke("add", "alice", "-c", str(config), input=PASSWORD, env=env)
    enrolled = await invoke("totp", "enrol", "alice", "-c", str(config), env=env)
    assert enrolled.exit_code == 0, enrolled.output
    uri = enrolled.stdout.strip()
    assert uri.startswith("otpauth://totp/Portico:alice?")
    secret = decode_secret(parse_qs(urlsplit(uri).query)["secret"][0])
    now = time.time()
    valid = {totp(secret, now + offset) for offset in (-30, 0, 30, 60)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333", "444444") if c not in valid)
    refused = await invoke("totp", "confirm", "alice", wrong, "-c", str(config), env=env)
    assert refused.exit_code == 1
    assert "not valid" in refused.stderr
    confirmed = await invoke("totp", "confirm", "alice", totp(secret, time.time()), "-c", str(config), env=env)
    assert confirmed.exit_code == 0, confirmed.output
    assert "\tactive\tactive\t" in (await invoke("list", "-c", str(config), env=env)).stdout
    assert (await library.authenticate("alice", PASSWORD)).failure is AuthFailure.MFA_REQUIRED
    assert (await invoke("totp", "remove", "alice", "-c", str(config), env=env)).exit_code == 0
    assert (await library.authenticate("alice", PASSWORD)).ok


async def test_confirm_without_an_enrolment_exits_1(config: Path, env: dict[str, str]) -> None:
    await invoke("add", "alice", "-c", str(config), input=PASSWORD, env=env)
    result = await invoke("totp", "confirm", "alice", "123456", "-c", str(config), env=env)
    assert result.exit_code == 1
    assert "begin one first" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["passwd", "ghost"],
        ["disable", "ghost"],
        ["enable", "ghost"],
        ["groups", "ghost"],
        ["add-group", "ghost", "eng"],
        ["totp", "enrol", "ghost"],
    ],
)
async def test_commands_on_an_unknown_user_exit_1(config: Path, env: dict[str, str], command: list[str]) -> None:
    await invoke("add", "alice", "-c", str(config), input=PASSWORD, env=env)
    result = await invoke(*command, "-c", str(config), input=PASSWORD, env=env)
    assert result.exit_code == 1, result.output
    assert "No user 'ghost'" in result.stderr


async def test_adding_a_taken_username_exits_2(config: Path, env: dict[str, str]) -> None:
    await invoke("add", "alice", "-c", str(config), input=PASSWORD, env=env)
    result = await invoke("add", "ALICE", "-c", str(config), input=OTHER, env=env)
    assert result.exit_code == 2
    assert "already exists" in result.stderr

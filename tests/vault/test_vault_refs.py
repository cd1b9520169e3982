"""`${vault:NAME}` references: the parser as a table, and resolution of a server's headers against a real vault."""

from __future__ import annotations

import pytest

from portico.config import resolve_secret
from portico.vault import SecretNameError, SecretNotFoundError, Vault, parse_vault_ref, resolve_server_secrets

pytestmark = pytest.mark.anyio

REFS = [
    ("${vault:token}", "token"),
    ("${vault:GITHUB_TOKEN}", "GITHUB_TOKEN"),
    ("${vault:api.key-2}", "api.key-2"),
    ("Bearer ${vault:token}", None),  # only a whole value is a reference
    ("${vault:token} ", None),
    ("${env:TOKEN}", None),
    ("${file:/run/secrets/token}", None),
    ("vault:token", None),
    ("$vault:token", None),
    ("", None),
    ("plain value", None),
]


@pytest.mark.parametrize(("value", "name"), REFS)
def test_only_a_whole_vault_reference_names_a_secret(value: str, name: str | None) -> None:
    assert parse_vault_ref(value) == name


MALFORMED = ["${vault:}", "${vault:two words}", "${vault:a/b}", "${vault:.hidden}", "${vault:" + "n" * 129 + "}"]


@pytest.mark.parametrize("value", MALFORMED)
def test_a_malformed_vault_reference_is_an_error_that_is_also_a_value_error(value: str) -> None:
    with pytest.raises(SecretNameError) as caught:
        parse_vault_ref(value)
    assert isinstance(caught.value, ValueError)  # so a pydantic validator reports it with the key and line


async def test_vault_references_resolve_to_the_servers_own_secrets_and_others_are_untouched(vault: Vault) -> None:
    await vault.put("server:github", "token", "ghp_123")
    await vault.put("server:github", "org", "acme")
    headers = {
        "Authorization": "${vault:token}",
        "X-Org": "${vault:org}",
        "X-Env": "${env:NOT_RESOLVED_HERE}",
        "Accept": "application/json",
    }
    assert await resolve_server_secrets(vault, "github", headers) == {
        "Authorization": "ghp_123",
        "X-Org": "acme",
        "X-Env": "${env:NOT_RESOLVED_HERE}",
        "Accept": "application/json",
    }


async def test_a_server_cannot_read_another_servers_secret(vault: Vault) -> None:
    await vault.put("server:github", "token", "ghp_123")
    with pytest.raises(SecretNotFoundError) as caught:
        await resolve_server_secrets(vault, "gitlab", {"Authorization": "${vault:token}"})
    assert "'server:gitlab'" in caught.value.public


async def test_other_references_go_through_the_given_resolver_once_and_vault_values_are_never_re_read(
    vault: Vault,
) -> None:
    await vault.put("server:tool", "tricky", "${env:HOME_SECRET}")  # a value that looks like a reference
    env = {"API_KEY": "from-env", "HOME_SECRET": "must not leak here"}
    resolved = await resolve_server_secrets(
        vault,
        "tool",
        {"API_KEY": "${env:API_KEY}", "TRICKY": "${vault:tricky}", "PLAIN": "x"},
        other=lambda value: resolve_secret(value, env),
    )
    assert resolved == {"API_KEY": "from-env", "TRICKY": "${env:HOME_SECRET}", "PLAIN": "x"}


async def test_a_mapping_without_vault_references_never_touches_the_vault(vault: Vault) -> None:
    assert await resolve_server_secrets(vault, "Not A Valid Id", {"A": "b"}) == {"A": "b"}

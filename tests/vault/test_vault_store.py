"""`Vault` on SQLite and PostgreSQL: round trips, listing, deletion, rotation, and values that never leak."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from portico.store import Store, StoreSettings
from portico.vault import (
    SecretIntegrityError,
    SecretNameError,
    SecretNotFoundError,
    Vault,
    VaultError,
    VaultKeyError,
    VaultSettings,
    user_server_scope,
)
from portico.vault.crypto import parse_key
from portico.vault.tables import vault_secrets

pytestmark = pytest.mark.anyio

SECRET = "ghp_S3cr3tV4lue-0123456789"


def vault_with(store: Store, settings: VaultSettings, current: str, *previous: str) -> Vault:
    env = {"PORTICO_VAULT_KEY": current, "PORTICO_VAULT_PREVIOUS_KEYS": ",".join(previous)}
    return Vault(store, settings, env=env)


async def raw_rows(store: Store) -> list[dict[str, Any]]:
    async with store.engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(text("SELECT * FROM vault_secrets"))).all()]


async def key_ids(store: Store) -> set[str]:
    async with store.engine.connect() as conn:
        return set((await conn.execute(select(vault_secrets.c.key_id))).scalars())


async def test_a_stored_secret_reads_back_unchanged(vault: Vault) -> None:
    await vault.put("server:github", "token", SECRET)
    await vault.put("server:github", "unicode", "pässwörd ✓ 🔑\n")
    assert await vault.get("server:github", "token") == SECRET
    assert await vault.get("server:github", "unicode") == "pässwörd ✓ 🔑\n"


async def test_storing_again_replaces_the_value_in_the_same_row(vault: Vault, store: Store) -> None:
    await vault.put("server:github", "token", "first")
    await vault.put("server:github", "token", "second")
    assert await vault.get("server:github", "token") == "second"
    assert len(await raw_rows(store)) == 1


async def test_a_user_scoped_secret_is_kept_apart_from_the_servers_own(vault: Vault) -> None:
    scope = user_server_scope("alice@example.com", "github")
    await vault.put("server:github", "token", "shared")
    await vault.put(scope, "token", "alice's own")
    assert await vault.get(scope, "token") == "alice's own"
    assert await vault.get("server:github", "token") == "shared"


async def test_a_missing_secret_is_not_found_naming_scope_and_name(vault: Vault) -> None:
    with pytest.raises(SecretNotFoundError) as caught:
        await vault.get("server:github", "token")
    assert "'token'" in caught.value.public
    assert "'server:github'" in caught.value.public


@pytest.mark.requirement("vault:encrypted-at-rest")
async def test_the_value_is_never_in_the_database_in_plain_text(vault: Vault, store: Store) -> None:
    await vault.put("server:github", "token", SECRET)
    await vault.put("user:bob:server:github", "token", SECRET)
    needles = [SECRET.encode(), SECRET.encode("utf-16-le"), SECRET.encode().hex().encode(), SECRET[:12].encode()]
    for row in await raw_rows(store):
        blob = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
        assert not any(n in blob for n in needles), row
    if store.settings.sqlite_path is not None:  # the file itself, write-ahead log included
        for path in store.settings.sqlite_path.parent.iterdir():
            assert not any(n in path.read_bytes() for n in needles), path


@pytest.mark.requirement("vault:bound-to-address")
async def test_a_ciphertext_copied_into_another_row_does_not_decrypt(vault: Vault, store: Store) -> None:
    await vault.put("server:github", "token", SECRET)
    await vault.put("server:gitlab", "token", "gitlab's own")
    async with store.engine.begin() as conn:
        row = (await conn.execute(select(vault_secrets).where(vault_secrets.c.scope == "server:github"))).one()
        await conn.execute(
            vault_secrets.update()
            .where(vault_secrets.c.scope == "server:gitlab")
            .values(nonce=row.nonce, ciphertext=row.ciphertext, key_id=row.key_id)
        )
    with pytest.raises(SecretIntegrityError):
        await vault.get("server:gitlab", "token")


async def test_an_altered_ciphertext_fails_its_integrity_check(vault: Vault, store: Store) -> None:
    await vault.put("server:github", "token", SECRET)
    async with store.engine.begin() as conn:
        row = (await conn.execute(select(vault_secrets.c.ciphertext))).one()
        altered = bytes([row.ciphertext[0] ^ 1]) + bytes(row.ciphertext[1:])
        await conn.execute(vault_secrets.update().values(ciphertext=altered))
    with pytest.raises(SecretIntegrityError):
        await vault.get("server:github", "token")


async def test_listing_shows_addresses_under_a_literal_case_sensitive_prefix_and_never_values(vault: Vault) -> None:
    for scope, name in [
        ("server:github", "token"),
        ("server:github", "app-key"),
        ("server:github-enterprise", "token"),
        ("server:gitlab", "token"),
        ("user:alice:server:github", "oauth"),
        ("user:a_ice:server:github", "oauth"),
    ]:
        await vault.put(scope, name, SECRET)
    everything = await vault.list()
    assert [(e.scope, e.name) for e in everything] == [
        ("server:github", "app-key"),
        ("server:github", "token"),
        ("server:github-enterprise", "token"),
        ("server:gitlab", "token"),
        ("user:a_ice:server:github", "oauth"),
        ("user:alice:server:github", "oauth"),
    ]
    assert all(e.key_id == vault.key_id and e.updated_at.tzinfo is not None for e in everything)
    assert [e.name for e in await vault.list("server:github")] == ["app-key", "token", "token"]
    assert [e.scope for e in await vault.list("user:a_")] == ["user:a_ice:server:github"]  # `_` is no wildcard
    assert await vault.list("SERVER:") == ()
    assert SECRET not in repr(everything)


@pytest.mark.parametrize("scope", ["oauth-client:nightly-report", "sso:okta", "sso:entra_id"])
async def test_client_and_sso_secrets_have_scopes_of_their_own(vault: Vault, scope: str) -> None:
    await vault.put(scope, "secret", SECRET)
    assert await vault.get(scope, "secret") == SECRET


async def test_a_deleted_secret_is_gone_and_deleting_it_again_is_not_found(vault: Vault) -> None:
    await vault.put("server:github", "token", SECRET)
    await vault.delete("server:github", "token")
    with pytest.raises(SecretNotFoundError):
        await vault.get("server:github", "token")
    with pytest.raises(SecretNotFoundError):
        await vault.delete("server:github", "token")


BAD_ADDRESSES = [
    ("no scope kind", "github", "token"),
    ("unknown scope kind", "group:admins", "token"),
    ("upper-case server id", "server:GitHub", "token"),
    ("empty server id", "server:", "token"),
    ("user scope without a server", "user:alice", "token"),
    ("user scope with an empty subject", "user::server:github", "token"),
    ("control character in the subject", "user:al\x1bice:server:github", "token"),
    ("scope too long", "user:" + "a" * 600 + ":server:github", "token"),
    ("empty name", "server:github", ""),
    ("space in the name", "server:github", "api key"),
    ("name too long", "server:github", "n" * 129),
    ("name starting with a dot", "server:github", ".token"),
    ("client scope with a space", "oauth-client:nightly report", "secret"),
    ("empty client id", "oauth-client:", "secret"),
    ("upper-case sso provider", "sso:Okta", "secret"),
]


@pytest.mark.parametrize(("case", "scope", "name"), BAD_ADDRESSES, ids=[c for c, _, _ in BAD_ADDRESSES])
async def test_a_malformed_scope_or_name_is_refused_before_touching_the_database(
    vault: Vault, case: str, scope: str, name: str
) -> None:
    for call in (vault.put(scope, name, SECRET), vault.get(scope, name), vault.delete(scope, name)):
        with pytest.raises(SecretNameError) as caught:
            await call
        assert "\x1b" not in caught.value.public
        assert len(caught.value.public) < 300


async def test_a_subject_with_colons_is_a_valid_user_scope(vault: Vault) -> None:
    scope = user_server_scope("https://idp.example.com:8443/users/42", "github")
    await vault.put(scope, "oauth", SECRET)
    assert await vault.get(scope, "oauth") == SECRET


# --------------------------------------------------------------------------------------------- rotation


@pytest.mark.requirement("vault:rotation")
async def test_after_rotation_every_secret_opens_with_the_new_key_alone(
    store: Store, vault_settings: VaultSettings, key_a: str, key_b: str, key_c: str
) -> None:
    await vault_with(store, vault_settings, key_c).put("server:old", "token", "sealed with C")
    vault = vault_with(store, vault_settings, key_a, key_c)
    for i in range(5):
        await vault.put(f"server:s{i}", "token", f"value {i}")
    assert await vault.rotate(parse_key(key_b, "new")) == 6
    assert vault.key_id == parse_key(key_b, "new").id
    assert await key_ids(store) == {vault.key_id}
    only_b = vault_with(store, vault_settings, key_b)
    assert await only_b.get("server:old", "token") == "sealed with C"
    assert [await only_b.get(f"server:s{i}", "token") for i in range(5)] == [f"value {i}" for i in range(5)]
    assert await vault.get("server:s0", "token") == "value 0"  # the rotated vault itself reads on
    await vault.put("server:s9", "token", "after")
    assert await key_ids(store) == {vault.key_id}  # and seals with the new key


async def test_rotating_to_the_current_key_re_encrypts_only_rows_under_other_keys(
    store: Store, vault_settings: VaultSettings, key_a: str, key_b: str
) -> None:
    await vault_with(store, vault_settings, key_b).put("server:old", "token", "under B")
    vault = vault_with(store, vault_settings, key_a, key_b)
    await vault.put("server:new", "token", "under A")
    assert await vault.rotate(parse_key(key_a, "same")) == 1
    assert await vault.rotate(parse_key(key_a, "same")) == 0
    assert await vault_with(store, vault_settings, key_a).get("server:old", "token") == "under B"


async def test_the_old_key_alone_cannot_open_rotated_secrets(
    store: Store, vault_settings: VaultSettings, key_a: str, key_b: str
) -> None:
    vault = vault_with(store, vault_settings, key_a)
    await vault.put("server:github", "token", SECRET)
    await vault.rotate(parse_key(key_b, "new"))
    with pytest.raises(VaultKeyError) as caught:
        await vault_with(store, vault_settings, key_a).get("server:github", "token")
    assert parse_key(key_b, "new").id in caught.value.public


@pytest.mark.requirement("vault:unknown-key-fails-clearly")
async def test_a_secret_sealed_with_a_key_neither_current_nor_previous_fails_clearly(
    store: Store, vault_settings: VaultSettings, key_a: str, key_b: str, key_c: str
) -> None:
    await vault_with(store, vault_settings, key_c).put("server:github", "token", SECRET)
    with pytest.raises(VaultKeyError) as caught:
        await vault_with(store, vault_settings, key_a, key_b).get("server:github", "token")
    message = caught.value.public
    assert parse_key(key_c, "c").id in message
    assert "'server:github'" in message
    assert "'token'" in message
    assert SECRET not in str(caught.value)


async def test_a_rotation_that_meets_an_unopenable_secret_changes_nothing(
    store: Store, vault_settings: VaultSettings, key_a: str, key_b: str, key_c: str
) -> None:
    vault = vault_with(store, vault_settings, key_a)
    for i in range(3):
        await vault.put(f"server:s{i}", "token", f"value {i}")
    await vault_with(store, vault_settings, key_c).put("server:zz-lost", "token", "sealed with a lost key")
    before = await raw_rows(store)
    with pytest.raises(VaultKeyError):
        await vault.rotate(parse_key(key_b, "new"))
    assert await raw_rows(store) == before
    assert vault.key_id == parse_key(key_a, "a").id  # the vault keeps sealing with its key


# ------------------------------------------------------------------------------------------ no leaks


@pytest.mark.requirement("vault:value-never-in-errors-or-logs")
async def test_the_value_never_appears_in_errors_logs_or_repr(
    vault: Vault, store: Store, vault_settings: VaultSettings, key_a: str, key_b: str, caplog: pytest.LogCaptureFixture
) -> None:
    caught: list[VaultError] = []
    with caplog.at_level(logging.DEBUG):
        await vault.put("server:github", "token", SECRET)
        assert await vault.get("server:github", "token") == SECRET
        await vault.list()
        assert await vault.rotate(parse_key(key_b, "b")) == 1
        for failing in (
            vault_with(store, vault_settings, key_a).get("server:github", "token"),
            vault.put("server:github", "bad name", SECRET),
            vault.put("server:github", "token", SECRET + "\ud800"),
        ):
            with pytest.raises(VaultError) as info:
                await failing
            caught.append(info.value)
        async with store.engine.begin() as conn:
            await conn.execute(vault_secrets.update().values(nonce=b"\x00" * 12))
        with pytest.raises(SecretIntegrityError) as integrity:
            await vault.get("server:github", "token")
        caught.append(integrity.value)
    shown = caplog.text + repr(vault) + "".join(f"{e!s}|{e.public}|{e.detail}|{e!r}" for e in caught)
    assert SECRET not in shown
    assert SECRET[:12] not in shown


async def test_a_database_failure_is_a_vault_error_without_the_value(vault_settings: VaultSettings, key_a: str) -> None:
    settings = StoreSettings(url="postgresql://nobody@127.0.0.1:1/nothing")
    dead = Store(create_async_engine(settings.async_url, hide_parameters=True), settings)
    try:
        vault = vault_with(dead, vault_settings, key_a)
        with pytest.raises(VaultError) as caught:
            await vault.put("server:github", "token", SECRET)
        assert type(caught.value) is VaultError
        assert SECRET not in f"{caught.value}{caught.value.detail}"
    finally:
        await dead.close()


async def test_a_vault_without_a_key_creates_its_key_file_on_the_first_write_only(store: Store, tmp_path: Path) -> None:
    settings = VaultSettings(key_file=tmp_path / "keys" / "vault.key")
    vault = Vault(store, settings, env={})
    assert await vault.list() == ()
    assert "not loaded" in repr(vault)
    assert not settings.key_path.exists()  # reading needs no key: nothing is created
    await vault.put("server:github", "token", SECRET)
    assert settings.key_path.is_file()
    assert await Vault(store, settings, env={}).get("server:github", "token") == SECRET


async def test_reading_a_secret_without_any_key_is_a_key_error_and_creates_no_key(
    vault: Vault, store: Store, tmp_path: Path
) -> None:
    await vault.put("server:github", "token", SECRET)
    settings = VaultSettings(key_file=tmp_path / "missing" / "vault.key")
    with pytest.raises(VaultKeyError) as caught:
        await Vault(store, settings, env={}).get("server:github", "token")
    assert "$PORTICO_VAULT_KEY is not set" in caught.value.public
    assert not settings.key_path.exists()

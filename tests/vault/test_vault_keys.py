"""The `vault:` section and where keys come from: the environment, a key file created on first use, previous
keys for rotation."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from portico.vault.crypto import new_key_text, parse_key
from portico.vault.keys import load_keyring, read_key_file
from portico.vault.model import VaultKeyError
from portico.vault.settings import DEFAULT_KEY_FILE, VaultSettings


def test_every_vault_setting_has_a_default_and_a_description() -> None:
    for name, field in VaultSettings.model_fields.items():
        assert not field.is_required(), name
        assert field.description, name


def test_unknown_vault_settings_are_rejected() -> None:
    with pytest.raises(ValidationError):
        VaultSettings.model_validate({"key": "inline keys are not a setting"})


def test_the_key_file_defaults_to_the_data_directory() -> None:
    assert VaultSettings().key_path == DEFAULT_KEY_FILE == Path(".portico/vault.key")


def test_a_key_file_is_created_on_first_use_with_mode_0600_and_reused_afterwards(tmp_path: Path) -> None:
    settings = VaultSettings(key_file=tmp_path / "data" / "vault.key")
    first = load_keyring(settings, env={})
    assert stat.S_IMODE(settings.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.key_path.parent.stat().st_mode) == 0o700
    assert load_keyring(settings, env={}).current == first.current
    assert parse_key(settings.key_path.read_text(), "file").id == first.current.id
    assert list(settings.key_path.parent.iterdir()) == [settings.key_path]  # no temporary file left behind


def test_the_key_from_the_environment_wins_over_the_key_file(tmp_path: Path) -> None:
    settings = VaultSettings(key_file=tmp_path / "vault.key", key_env="MY_VAULT_KEY")
    key = new_key_text()
    assert load_keyring(settings, env={"MY_VAULT_KEY": key}).current == parse_key(key, "env")
    assert not settings.key_path.exists()  # no file is made when the environment has the key


def test_an_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    settings = VaultSettings(key_file=tmp_path / "vault.key")
    load_keyring(settings, env={"PORTICO_VAULT_KEY": ""})
    assert settings.key_path.is_file()


def test_a_malformed_key_in_the_environment_is_a_key_error_naming_the_variable(tmp_path: Path) -> None:
    settings = VaultSettings(key_file=tmp_path / "vault.key")
    with pytest.raises(VaultKeyError) as caught:
        load_keyring(settings, env={"PORTICO_VAULT_KEY": "hunter2hunter2"})
    assert "$PORTICO_VAULT_KEY" in caught.value.public
    assert "hunter2" not in str(caught.value)


def test_a_key_file_that_cannot_be_created_is_a_key_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("")
    settings = VaultSettings(key_file=tmp_path / "not-a-directory" / "vault.key")
    with pytest.raises(VaultKeyError) as caught:
        load_keyring(settings, env={})
    assert str(settings.key_path) in caught.value.public


def test_previous_keys_come_from_their_variable_without_repeating_the_current_one(tmp_path: Path) -> None:
    current, older, oldest = new_key_text(), new_key_text(), new_key_text()
    env = {"PORTICO_VAULT_KEY": current, "PORTICO_VAULT_PREVIOUS_KEYS": f"{older},{current} {oldest}"}
    keys = load_keyring(VaultSettings(key_file=tmp_path / "k"), env)
    assert keys.current.id == parse_key(current, "").id
    assert [k.id for k in keys.previous] == [parse_key(older, "").id, parse_key(oldest, "").id]


def test_a_key_file_readable_by_others_is_used_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "vault.key"
    key = new_key_text()
    path.write_text(key + "\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="portico.vault"):
        keys = load_keyring(VaultSettings(key_file=path), env={})
    assert keys.current.id == parse_key(key, "").id
    assert "chmod 600" in caplog.text
    assert key not in caplog.text


def test_without_create_a_missing_key_file_is_a_key_error(tmp_path: Path) -> None:
    settings = VaultSettings(key_file=tmp_path / "vault.key")
    with pytest.raises(VaultKeyError):
        load_keyring(settings, env={}, create=False)
    assert not settings.key_path.exists()
    created = load_keyring(settings, env={})
    assert load_keyring(settings, env={}, create=False).current == created.current


def test_a_new_key_file_for_rotation_must_exist(tmp_path: Path) -> None:
    with pytest.raises(VaultKeyError):
        read_key_file(tmp_path / "missing.key")
    (tmp_path / "new.key").write_text(new_key_text())
    assert read_key_file(tmp_path / "new.key").id

"""The `vault:` section of `portico.yaml`: where the credential vault's encryption keys come from.

Keys are never written in the file. The current key is read from the environment variable `key_env`, else from
`key_file` (created with a random key, mode 0600, on first use). Keys retired by a rotation stay readable
while listed in `previous_keys_env`. Relative paths are relative to the working directory, like the default
SQLite URL.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_KEY_FILE = Path(".portico/vault.key")


class VaultSettings(BaseModel):
    """Where the key that encrypts upstream credentials at rest comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_env: str = Field(
        default="PORTICO_VAULT_KEY",
        description="Environment variable holding the current vault key: base64 of 32 random bytes "
        "(`openssl rand -base64 32`). New secrets are sealed with it. If unset, `key_file` is used. Replicas "
        "must share the key.",
    )
    key_file: Path | None = Field(
        default=None,
        description="File holding the current vault key (base64) when `key_env` is unset; created with a random "
        "key, mode 0600, on first use. Default: `.portico/vault.key`. Back it up: without it the stored "
        "credentials cannot be decrypted.",
    )
    previous_keys_env: str = Field(
        default="PORTICO_VAULT_PREVIOUS_KEYS",
        description="Environment variable listing earlier vault keys (base64, separated by commas or spaces) "
        "still accepted for decryption after `portico vault rotate`, until every row is re-encrypted.",
    )

    @property
    def key_path(self) -> Path:
        """`key_file`, or its default in the data directory."""
        return self.key_file or DEFAULT_KEY_FILE

"""The upstream credential vault: secrets Portico presents to upstream servers, encrypted at rest.

Sits beside the upstream connectors, below the pipeline: a connector resolves its server's `${vault:NAME}`
header and environment values (`refs.resolve_server_secrets`) when it connects, and the `portico vault` CLI
manages the secrets. Nothing a client sends ever reaches the vault, and no value leaves it except to the
upstream it belongs to (or to an operator's `portico vault get --reveal`).

Modules: `model` (errors, secret addresses), `crypto` (AES-256-GCM envelopes, pure), `keys` (key loading),
`settings` (the `vault:` section), `tables` (the `vault_secrets` table), `store` (`Vault`), `refs`
(`${vault:…}` references). Imports `portico.errors`, `portico.store` and third-party libraries; never
`portico.config` (which imports `portico.vault.settings` and `portico.vault.refs`).
"""

from portico.vault.model import (
    SecretEntry,
    SecretIntegrityError,
    SecretNameError,
    SecretNotFoundError,
    VaultError,
    VaultKeyError,
    server_scope,
    user_server_scope,
)
from portico.vault.refs import parse_vault_ref, resolve_server_secrets
from portico.vault.settings import VaultSettings
from portico.vault.store import Vault

__all__ = [
    "SecretEntry",
    "SecretIntegrityError",
    "SecretNameError",
    "SecretNotFoundError",
    "Vault",
    "VaultError",
    "VaultKeyError",
    "VaultSettings",
    "parse_vault_ref",
    "resolve_server_secrets",
    "server_scope",
    "user_server_scope",
]

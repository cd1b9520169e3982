"""`${vault:NAME}` references in server headers and environments, resolved at connect time.

In `portico.yaml`, a server's header or environment value written `${vault:NAME}` means the vault secret
`NAME` in scope `server:<that server's id>`: a server can only ever read its own credentials. Resolution
happens each time the upstream connects, so `portico vault set` takes effect at the next reconnect without a
restart, and the value lives only in the connector's memory.

Imports nothing of Portico's but the vault model (so `portico.config` may import it for validation).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Protocol

from portico.vault.model import SecretNameError, check_name, server_scope, shown

_VAULT_REF = re.compile(r"\$\{vault:(.*)\}", re.DOTALL)


class SecretReader(Protocol):
    """What resolution needs of a vault (a `Vault` is one)."""

    async def get(self, scope: str, name: str) -> str: ...


def parse_vault_ref(value: str) -> str | None:
    """The secret name of a `${vault:NAME}` reference; None when `value` is not one (a plain value or another
    kind of reference).

    Raises:
        SecretNameError: `value` is a `${vault:…}` reference whose name is not a valid secret name (a ValueError
            too, so a pydantic validator reports it as a config error).
    """
    match = _VAULT_REF.fullmatch(value)
    if match is None:
        return None
    try:
        return check_name(match.group(1))
    except SecretNameError:
        raise SecretNameError(
            f"Invalid vault reference {shown(value)}: expected ${{vault:NAME}} with NAME of letters, digits, "
            "'.', '_' or '-'"
        ) from None


async def resolve_server_secrets(
    vault: SecretReader,
    server_id: str,
    mapping: Mapping[str, str],
    *,
    other: Callable[[str], str] | None = None,
) -> dict[str, str]:
    """`mapping` (headers or environment) with each `${vault:NAME}` value replaced by the secret `NAME` of
    scope `server:<server_id>`. Other values are kept as they are, or passed through `other` when given
    (e.g. `portico.config.resolve_secret` for `${env:…}` / `${file:…}`).

    Each value is resolved once, by what it was written as: a secret whose value happens to look like
    `${file:/etc/shadow}` is sent as that text, never read as a reference.

    Raises:
        SecretNameError: a malformed `${vault:…}` reference, or `server_id` is not a valid server id.
        SecretNotFoundError: a referenced secret is not in the vault (the error names scope and name).
        VaultError: the vault cannot open the secret (its key, its integrity, the database).
        Whatever `other` raises.
    """
    resolved: dict[str, str] = {}
    for key, value in mapping.items():
        name = parse_vault_ref(value)
        if name is not None:
            resolved[key] = await vault.get(server_scope(server_id), name)
        else:
            resolved[key] = value if other is None else other(value)
    return resolved

"""`portico token issue`: mint an access token for an operator or a script, audited; `portico token rotate-keys`:
make a fresh signing key current (the previous one verifies for the grace period), audited.

The same kind of token the OAuth flow issues (an RFC 9068 JWT signed with Portico's keys, scope `mcp`), for a
local user who exists and is not disabled, carrying the user's current groups, valid only at one MCP URL of
this Portico (`--resource`, default the portal). It records no sign-in method (`amr`), so rules that need MFA
do not match it. The token is the only thing printed on standard output (`TOKEN=$(portico token issue …)`);
what it is good for goes to standard error. Every issue is an audit record (`auth.token_issue`) written by a
node of its own (`cli-…`), so it never contends with a running Portico's chain.

Exit codes: 0 issued, 1 no such user (or disabled), 2 the config, resource, database or keys cannot be used.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from portico.cli.common import operator_name, record_operator_action, run_with_store
from portico.config import Settings
from portico.config import load as load_config
from portico.errors import ConfigError
from portico.identity.keys import KeyRing
from portico.identity.resource import resource_urls
from portico.identity.settings import MCP_SCOPE
from portico.identity.tokens import TokenIssuer
from portico.identity.users import UserDirectory, UserNotFoundError
from portico.store.db import Store
from portico.vault import Vault

CLI_CLIENT_ID = "portico-cli"
app = typer.Typer(help="Mint access tokens for operators and scripts.", no_args_is_help=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class DisabledUserError(UserNotFoundError):
    default_public = "That user is disabled"


@app.command("issue")
def issue_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="portico.yaml whose keys, users and store to use.")],
    user: Annotated[str, typer.Option("--user", "-u", help="The local user the token is for.")],
    ttl: Annotated[
        int | None, typer.Option("--ttl", min=1, help="Lifetime in seconds (identity.tokens bounds).")
    ] = None,
    resource: Annotated[
        str | None, typer.Option("--resource", help="The MCP URL the token is for (default: the portal's /mcp).")
    ] = None,
) -> None:
    """Print a signed access token for USER, valid at one MCP URL of this Portico."""
    try:
        settings = load_config(config)
        resources = resource_urls(settings.public_url, [s.id for s in settings.servers if s.enabled])
        audience = resource or resources[0]
        if audience not in resources:
            raise ConfigError(
                f"--resource {audience} is not an MCP URL of this Portico; one of: {', '.join(resources)}"
            )
        tokens = settings.token_settings
        if ttl is not None and ttl > tokens.max_access_ttl_s:
            raise ConfigError(f"--ttl {ttl} is over identity.tokens.max_access_ttl_s ({tokens.max_access_ttl_s})")
    except ConfigError as exc:
        err.print(f"error: {exc.public}", markup=False)
        raise typer.Exit(2) from exc
    if settings.auth != "oauth":
        err.print("warning: auth is not oauth in this config, so Portico does not ask for tokens", markup=False)

    async def issue(store: Store) -> tuple[str, str, frozenset[str]]:
        account = await UserDirectory(store, Vault(store, settings.vault), settings.identity.users).get_user(user)
        if account.disabled:
            raise DisabledUserError(f"{account.username} is disabled")
        token = TokenIssuer(KeyRing.open(tokens), tokens).issue(
            account.subject, audience, scopes=[MCP_SCOPE], client_id=CLI_CLIENT_ID, groups=account.groups, ttl_s=ttl
        )
        await _audit(store, settings, account.subject, audience, ttl or tokens.access_ttl_s)
        return token, account.subject, account.groups

    token, subject, groups = run_with_store(lambda: settings.store, issue, migrate=True, exit_1=(UserNotFoundError,))
    expires = datetime.fromtimestamp(datetime.now(UTC).timestamp() + (ttl or tokens.access_ttl_s), UTC)
    shown_groups = ", ".join(sorted(groups)) or "none"
    err.print(f"token for {subject} (groups: {shown_groups}) at {audience}, expires {expires:%Y-%m-%d %H:%M:%SZ}")
    print(token)


async def _audit(store: Store, settings: Settings, subject: str, audience: str, ttl_s: int) -> None:
    await record_operator_action(
        store,
        settings.audit,
        "auth.token_issue",
        subject=subject,
        target=audience,
        reason=f"issued by {operator_name()} with portico token issue",
        extra={"ttl_s": ttl_s},
        client_id=CLI_CLIENT_ID,
    )


@app.command("rotate-keys")
def rotate_keys_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="portico.yaml whose signing keys to rotate.")],
    grace: Annotated[
        int | None,
        typer.Option(
            "--grace",
            min=0,
            help="Seconds the previous key keeps verifying (default identity.tokens.rotation_grace_s; 0 = at once, "
            "for a leaked key: every token it signed stops working).",
        ),
    ] = None,
) -> None:
    """Make a fresh signing key current; running Portico processes pick it up within seconds."""
    try:
        settings = load_config(config)
    except ConfigError as exc:
        err.print(f"error: {exc.public}", markup=False)
        raise typer.Exit(2) from exc
    tokens = settings.token_settings

    async def rotate(store: Store) -> str:
        ring = KeyRing.open(tokens)
        previous = ring.current.kid
        fresh = ring.rotate(grace_s=grace)
        await record_operator_action(
            store,
            settings.audit,
            "auth.key_rotation",
            subject=operator_name(),
            target=str(tokens.key_file),
            reason=f"signing key {previous} replaced by {fresh.kid} with portico token rotate-keys",
            extra={
                "previous_kid": previous,
                "kid": fresh.kid,
                "grace_s": tokens.rotation_grace_s if grace is None else grace,
            },
        )
        return fresh.kid

    kid = run_with_store(lambda: settings.store, rotate, migrate=True)
    err.print(
        f"new signing key {kid}; the previous one verifies for {tokens.rotation_grace_s if grace is None else grace} s"
    )


__all__ = ["CLI_CLIENT_ID", "app"]

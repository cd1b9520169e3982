"""The browser side of per-user upstream OAuth: a user connects their own account at an upstream.

Sits beside the MCP endpoint, outside the pipeline: `app.Portico` routes `/connect/…` here (behind the same Host
check as the sign-in pages). A call that needs a user's upstream token and has none fails with a URL-mode
elicitation carrying `/connect/<server>?ticket=…` (minted by `portico.upstream.user_pool`); the pages here
show what will be connected, send the browser to the upstream's authorization server, and store the tokens
through `portico.upstream.oauth_client.OAuthClient`.

May import `portico.config`, `portico.errors`, `portico.types`, `portico.upstream`, `portico.vault`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portico.config import Settings
from portico.connect.app import PATH_PREFIX, ConnectApp, SignedIn
from portico.upstream.oauth_client import OAuthClient
from portico.upstream.pool import UpstreamPool
from portico.vault import Vault

if TYPE_CHECKING:
    from portico.audit.log import AuditLog


def open_connect(
    settings: Settings,
    vault: Vault,
    pool: UpstreamPool,
    signed_in: SignedIn | None = None,
    *,
    audit: AuditLog | None = None,
) -> ConnectApp | None:
    """The connect routes, bound to `pool`'s per-user OAuth upstreams; None when no server has `oauth:`.
    `signed_in` tells who a browser is signed in to Portico as (the authorization server's session): the
    connect pages then work only for the link's own subject, and disconnecting works at all. `audit` records
    connects, disconnects and refused refreshes. Close it with `aclose()` on shutdown."""
    servers = {s.id: s for s in settings.servers if s.oauth is not None and s.enabled}
    if not servers:
        return None
    client = OAuthClient(vault, settings.public_url, audit=audit)
    pool.bind_oauth(client)
    return ConnectApp(client, servers, signed_in)


__all__ = ["PATH_PREFIX", "ConnectApp", "open_connect"]

"""All upstream connectors of one Portico process, supervised in one task group."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import anyio
import anyio.abc

from portico.config import ServerSettings
from portico.errors import ConfigError, NotFoundError
from portico.upstream.base import NotificationListener, Upstream
from portico.upstream.http import HttpUpstream
from portico.upstream.legacy_sse import SseUpstream
from portico.upstream.oauth_client import OAuthClient
from portico.upstream.stdio import StdioUpstream
from portico.upstream.user_pool import OAuthUpstream
from portico.vault.refs import SecretReader

log = logging.getLogger("portico.upstream")

_KINDS: dict[str, type[Upstream]] = {"streamable_http": HttpUpstream, "sse": SseUpstream, "stdio": StdioUpstream}


def build_upstream(settings: ServerSettings, on_notification: NotificationListener | None = None) -> Upstream:
    """Raises: ConfigError: `oauth:` on a server that is not a Streamable HTTP `url`."""
    if settings.oauth is not None:
        if settings.kind != "streamable_http":
            raise ConfigError(f"servers.{settings.id}.oauth: per-user OAuth needs a Streamable HTTP `url`")
        return OAuthUpstream(settings, on_notification)
    return _KINDS[settings.kind](settings, on_notification)


class UpstreamPool:
    def __init__(self, servers: list[ServerSettings], on_notification: NotificationListener | None = None) -> None:
        self._upstreams = {s.id: build_upstream(s, on_notification) for s in servers}
        self._tg: anyio.abc.TaskGroup | None = None

    def __iter__(self) -> Iterator[Upstream]:
        return iter(self._upstreams.values())

    def __contains__(self, server_id: object) -> bool:
        return server_id in self._upstreams

    def get(self, server_id: str) -> Upstream:
        """Raises: NotFoundError: no such server."""
        try:
            return self._upstreams[server_id]
        except KeyError:
            raise NotFoundError("Unknown server") from None

    def bind_secrets(self, secrets: SecretReader) -> None:
        """Where upstreams read their `${vault:…}` credentials from (the vault, once the store is open)."""
        for upstream in self._upstreams.values():
            upstream.secrets = secrets

    def bind_oauth(self, client: OAuthClient) -> bool:
        """Where per-user upstream tokens come from. Returns whether any server uses them (`oauth:`)."""
        bound = False
        for upstream in self._upstreams.values():
            if isinstance(upstream, OAuthUpstream):
                upstream.bind(client)
                bound = True
        return bound

    async def start(self, tg: anyio.abc.TaskGroup, wait_s: float) -> None:
        """Start every supervisor; wait (bounded) for each first connect attempt so the catalog starts full."""
        self._tg = tg
        for upstream in self._upstreams.values():
            tg.start_soon(upstream.supervise, name=f"upstream:{upstream.id}")
        with anyio.move_on_after(wait_s):
            for upstream in self._upstreams.values():
                await upstream.first_attempt.wait()

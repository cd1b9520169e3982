"""Remote upstreams on the legacy HTTP+SSE transport (protocol 2024-11-05, deprecated but still deployed).

One GET opens the event stream; its first `endpoint` event names the URL to POST messages to; every response
and server message arrives on that one stream, so it is multiplexed by `RpcPeer` like a stdio pipe.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urljoin, urlparse

import anyio
import anyio.abc
import httpx2

from portico.errors import UpstreamUnavailableError
from portico.types import JSON, Era, Exchange
from portico.upstream.base import Upstream
from portico.upstream.model import UpstreamInfo
from portico.upstream.rpc import RpcPeer
from portico.upstream.sse import SseTooLargeError, iter_events

log = logging.getLogger("portico.upstream.sse")


class SseUpstream(Upstream):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: httpx2.AsyncClient | None = None
        self._peer: RpcPeer | None = None

    async def _connect(self, tg: anyio.abc.TaskGroup) -> UpstreamInfo:
        assert self.settings.url is not None
        headers = await self.resolve_values(self.settings.headers)
        self._client = client = httpx2.AsyncClient(
            headers=headers, timeout=httpx2.Timeout(self.settings.timeout_s, connect=self.settings.connect_timeout_s)
        )
        endpoint_found = anyio.Event()
        endpoint: list[str] = []

        async def send(data: bytes) -> None:
            try:
                response = await client.post(endpoint[0], content=data, headers={"content-type": "application/json"})
            except httpx2.TransportError as exc:
                self.mark_broken(f"{type(exc).__name__}: {exc}")
                raise UpstreamUnavailableError(detail=str(exc)) from exc
            if response.status_code >= 400:
                raise UpstreamUnavailableError(detail=f"POST to the message endpoint: HTTP {response.status_code}")

        async def on_notification(method: str, params: JSON) -> None:
            await self.notify_listener(method, params)

        self._peer = peer = RpcPeer(self.id, send, on_notification)

        async def read_stream(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            reason = "event stream ended"
            try:
                async with client.stream(
                    "GET",
                    self._url,
                    headers={"accept": "text/event-stream"},
                    timeout=httpx2.Timeout(None, connect=self.settings.connect_timeout_s),
                ) as response:
                    if response.status_code != 200:
                        reason = f"GET event stream: HTTP {response.status_code}"
                        task_status.started()
                        return
                    task_status.started()
                    async for event in iter_events(response.aiter_bytes(), self.settings.max_message_bytes):
                        if event.event == "endpoint" and not endpoint:
                            endpoint.append(self._endpoint_url(event.data))
                            endpoint_found.set()
                        elif event.event == "message" and event.data:
                            await peer.feed(event.data, tg)
            except (httpx2.HTTPError, SseTooLargeError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                peer.close(reason)
                self.mark_broken(reason)
                endpoint_found.set()

        await tg.start(read_stream)
        await endpoint_found.wait()
        if not endpoint:
            raise UpstreamUnavailableError(detail="the SSE stream sent no endpoint event")
        result = await peer.handshake()
        return UpstreamInfo(
            server_info=result.get("serverInfo") or {},
            capabilities=result.get("capabilities") or {},
            instructions=result.get("instructions"),
            protocol_version=str(result.get("protocolVersion")),
            eras=frozenset({Era.LEGACY}),
        )

    def _endpoint_url(self, data: str) -> str:
        """Resolve the endpoint against the stream URL; refuse one on another origin (it would leak traffic)."""
        url = urljoin(self._url, data.strip())
        if urlparse(url)[:2] != urlparse(self._url)[:2]:
            raise UpstreamUnavailableError(detail=f"endpoint on another origin refused: {url}")
        return url

    @property
    def _url(self) -> str:
        assert self.settings.url is not None
        return self.settings.url

    async def _send(self, exchange: Exchange, method: str, params: JSON) -> JSON:
        if self._peer is None:
            raise UpstreamUnavailableError(f"Upstream server {self.id!r} is unavailable")
        return await self._peer.call(exchange, method, params)

    async def _disconnect(self) -> None:
        if self._peer is not None:
            self._peer.close("stopped")
            self._peer = None
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

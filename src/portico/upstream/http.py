"""Remote Streamable HTTP upstreams, in both protocol eras.

One keep-alive connection pool per upstream (`upstream.wire`: one write per request; TLS context built once).
At connect, `era: auto` probes both wires: `server/discover` (2026-07-28) and `initialize` (handshake era,
one long-lived `Mcp-Session-Id`). Each call then goes out in the caller's own era when the upstream speaks it,
so progress, logs, sampling and elicitation keep their native shape; otherwise in the era the upstream has.

Messages the upstream sends on a call's SSE stream belong to that call: notifications go to the caller's
sink, server requests are relayed to the caller and answered upstream. Messages on the standing stream (GET
on the legacy wire, `subscriptions/listen` on the modern one) feed the catalog (list_changed).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import orjson
from mcp.shared.inbound import NAME_BEARING_METHODS, encode_header_value, mcp_param_headers, x_mcp_header_map

from portico.errors import NoBackChannelError, UpstreamError, UpstreamUnavailableError
from portico.types import JSON, Era, Exchange
from portico.upstream.base import Upstream
from portico.upstream.envelope import LEGACY_VERSION, MODERN_VERSION, legacy_params, modern_params
from portico.upstream.model import PORTICO_CLIENT_CAPABILITIES, PORTICO_CLIENT_INFO, UpstreamInfo
from portico.upstream.sse import SseTooLargeError, iter_events
from portico.upstream.wire import ConnectionLost, Pool, Response

log = logging.getLogger("portico.upstream.http")

ACCEPT = "application/json, text/event-stream"
MAX_RESUMES = 100
STANDING_RETRY_S = 5.0
LIST_CHANGED = {"toolsListChanged": True, "promptsListChanged": True, "resourcesListChanged": True}


class HttpUpstream(Upstream):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Pool | None = None
        self._ids = itertools.count(1)
        self._session_id: str | None = None
        self._legacy_version = LEGACY_VERSION
        self._eras: frozenset[Era] = frozenset()
        self._session_lock = anyio.Lock()
        self._listen_scope: anyio.CancelScope | None = None

    # --------------------------------------------------------------------------------------- connect

    async def _connect(self, tg: anyio.abc.TaskGroup) -> UpstreamInfo:
        assert self.settings.url is not None
        headers = await self.resolve_values(self.settings.headers)
        self._client = Pool(
            self.settings.url, default_headers=headers, connect_timeout_s=self.settings.connect_timeout_s
        )
        wanted = self.settings.era
        info: UpstreamInfo | None = None
        eras: set[Era] = set()
        problems: list[str] = []
        if wanted in ("auto", "modern"):
            try:
                info = await self._discover()
                eras.add(Era.MODERN)
            except UpstreamError as exc:
                problems.append(f"server/discover: {exc.detail or exc.public}")
        if wanted in ("auto", "legacy"):
            try:
                legacy_info = await self._initialize()
                eras.add(Era.LEGACY)
                info = info or legacy_info
            except UpstreamError as exc:
                problems.append(f"initialize: {exc.detail or exc.public}")
        if info is None:
            raise UpstreamUnavailableError(detail="; ".join(problems) or "no protocol era answered")
        self._eras = frozenset(eras)
        tg.start_soon(self._standing_stream)
        return UpstreamInfo(info.server_info, info.capabilities, info.instructions, info.protocol_version, self._eras)

    async def _discover(self) -> UpstreamInfo:
        response = await self._roundtrip(None, Era.MODERN, "server/discover", {}, retry_session=False)
        result = _result_or_raise(response, "server/discover")
        versions = result.get("supportedVersions") or []
        if MODERN_VERSION not in versions:
            raise UpstreamUnavailableError(detail=f"server/discover offers no version we speak: {versions}")
        meta = result.get("_meta") or {}
        return UpstreamInfo(
            server_info=meta.get("io.modelcontextprotocol/serverInfo") or result.get("serverInfo") or {},
            capabilities=result.get("capabilities") or {},
            instructions=result.get("instructions"),
            protocol_version=MODERN_VERSION,
            eras=frozenset({Era.MODERN}),
        )

    async def _initialize(self) -> UpstreamInfo:
        self._session_id = None
        params = {
            "protocolVersion": LEGACY_VERSION,
            "capabilities": PORTICO_CLIENT_CAPABILITIES,
            "clientInfo": PORTICO_CLIENT_INFO,
        }
        response = await self._roundtrip(None, Era.LEGACY, "initialize", params, retry_session=False)
        result = _result_or_raise(response, "initialize")
        self._legacy_version = str(result.get("protocolVersion") or LEGACY_VERSION)
        await self._post_message(Era.LEGACY, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        if isinstance(result.get("capabilities"), dict) and "logging" in result["capabilities"]:
            # One upstream session serves every client: take all levels, filter per client at the edge.
            await self._roundtrip(None, Era.LEGACY, "logging/setLevel", {"level": "debug"}, retry_session=False)
        return UpstreamInfo(
            server_info=result.get("serverInfo") or {},
            capabilities=result.get("capabilities") or {},
            instructions=result.get("instructions"),
            protocol_version=self._legacy_version,
            eras=frozenset({Era.LEGACY}),
        )

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if self._session_id is not None:
            try:
                with anyio.move_on_after(1):
                    headers = self._legacy_headers()
                    headers.pop("content-type")
                    await (await client.request("DELETE", headers)).aclose()
            except ConnectionLost:
                pass
            self._session_id = None
        await client.aclose()

    @property
    def _url(self) -> str:
        assert self.settings.url is not None
        return self.settings.url

    # ------------------------------------------------------------------------------------------ calls

    async def _send(self, exchange: Exchange, method: str, params: JSON) -> JSON:
        era = exchange.era if exchange.era in self._eras else next(iter(sorted(self._eras)))
        return await self._roundtrip(exchange, era, method, params, retry_session=True)

    async def _roundtrip(
        self, exchange: Exchange | None, era: Era, method: str, params: JSON, *, retry_session: bool
    ) -> JSON:
        request_id = next(self._ids)
        params = modern_params(exchange, params) if era is Era.MODERN else legacy_params(params)
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        headers = self._modern_headers(method, params, exchange) if era is Era.MODERN else self._legacy_headers()
        try:
            async with self._stream(headers, body) as response:
                if response.status_code == 404 and era is Era.LEGACY and self._session_id and retry_session:
                    await response.aclose()
                    await self._reinitialize()
                    return await self._roundtrip(exchange, era, method, params, retry_session=False)
                if method == "initialize" and "mcp-session-id" in response.headers:
                    self._session_id = response.headers["mcp-session-id"]
                return await self._read_response(response, request_id, exchange, era)
        except ConnectionLost as exc:
            reason = str(exc)
            self.mark_broken(reason)
            raise UpstreamUnavailableError(f"Upstream server {self.id!r} is unavailable", detail=reason) from exc
        except SseTooLargeError as exc:
            raise UpstreamError(f"Upstream server {self.id!r} sent a message over the size limit") from exc
        except anyio.get_cancelled_exc_class():
            # Timed out, or our caller cancelled. Closing the stream already cancels on the modern wire; on the
            # handshake wire a disconnect is not a cancellation, so say it.
            if era is Era.LEGACY and method != "initialize":
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    notice = {"requestId": request_id, "reason": "cancelled by the caller or timed out at Portico"}
                    await self._post_message(
                        Era.LEGACY, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": notice}
                    )
            raise

    @asynccontextmanager
    async def _stream(self, headers: dict[str, str], body: JSON) -> AsyncIterator[Response]:
        if self._client is None:
            raise UpstreamUnavailableError(detail="not connected")
        response = await self._client.request("POST", headers, orjson.dumps(body))
        try:
            yield response
        finally:
            await response.aclose()

    async def _read_response(self, response: Response, request_id: int, exchange: Exchange | None, era: Era) -> JSON:
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("text/event-stream"):
            return await self._read_stream(response, request_id, exchange, era)
        data = await self._read_limited(response)
        message = _loads(data) if data else None
        if message is not None and ("result" in message or "error" in message):
            return message
        raise UpstreamError(
            f"Upstream server {self.id!r} sent an invalid response",
            detail=f"HTTP {response.status_code} {content_type!r}: {data[:200]!r}",
        )

    async def _read_limited(self, response: Response) -> bytes:
        limit = self.settings.max_message_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise SseTooLargeError("declared body over the limit")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise SseTooLargeError("body over the limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _read_stream(self, response: Response, request_id: int, exchange: Exchange | None, era: Era) -> JSON:
        """Read a call's SSE stream to its response, resuming with Last-Event-ID if the server polls (SEP-1699)."""
        last_id: str | None = None
        retry_ms = 1000
        for _ in range(MAX_RESUMES):
            async for event in iter_events(response.aiter_bytes(), self.settings.max_message_bytes):
                last_id = event.id or last_id
                retry_ms = event.retry_ms if event.retry_ms is not None else retry_ms
                message = _loads(event.data) if event.data else None
                if message is None:
                    continue
                if "method" not in message and message.get("id") == request_id:
                    return message
                await self._on_stream_message(message, exchange, era)
            await response.aclose()
            if last_id is None or era is not Era.LEGACY or self._client is None:
                break
            # The server closed the stream mid-call and told us when to come back: mirror that to our caller,
            # then resume where we left off.
            if exchange is not None:
                await exchange.sink.poll(retry_ms)
            await anyio.sleep(retry_ms / 1000)
            headers = {**self._legacy_headers(), "accept": "text/event-stream", "last-event-id": last_id}
            headers.pop("content-type")
            response = await self._client.request("GET", headers)
            if response.status_code != 200:
                await response.aclose()
                break
        raise UpstreamUnavailableError(detail="the upstream closed the response stream before answering")

    async def _on_stream_message(self, message: JSON, exchange: Exchange | None, era: Era) -> None:
        method = message.get("method")
        if method is None:
            return
        if "id" not in message:
            if exchange is not None and method in ("notifications/progress", "notifications/message"):
                await exchange.sink.notify(message)
            else:
                await self.notify_listener(method, message.get("params") or {})
            return
        reply: JSON
        if method == "ping":
            reply = {"result": {}}
        elif exchange is None:
            reply = {"error": {"code": -32601, "message": "No caller to relay this request to"}}
        else:
            try:
                reply = await exchange.sink.request(method, message.get("params"))
            except NoBackChannelError as exc:
                reply = {"error": exc.to_rpc().to_json()}
        answer = {"jsonrpc": "2.0", "id": message["id"]}
        answer.update({k: v for k, v in reply.items() if k in ("result", "error")})
        await self._post_message(era, answer)

    async def _post_message(self, era: Era, message: JSON) -> None:
        """POST a notification or a response (202 expected)."""
        if self._client is None:
            return
        headers = (
            self._legacy_headers()
            if era is Era.LEGACY
            else {"content-type": "application/json", "accept": ACCEPT, "mcp-protocol-version": MODERN_VERSION}
        )
        try:
            response = await self._client.request("POST", headers, orjson.dumps(message))
            await response.aread()
            await response.aclose()
        except ConnectionLost as exc:
            log.info("upstream %s: could not deliver %s: %s", self.id, message.get("method", "response"), exc)

    async def _reinitialize(self) -> None:
        async with self._session_lock:
            log.info("upstream %s: session expired; initializing a new one", self.id)
            await self._initialize()

    def _legacy_headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": ACCEPT, "mcp-protocol-version": self._legacy_version}
        if self._session_id is not None:
            headers["mcp-session-id"] = self._session_id
        return headers

    def _modern_headers(self, method: str, params: JSON, exchange: Exchange | None) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": ACCEPT,
            "mcp-protocol-version": MODERN_VERSION,
            "mcp-method": method,
        }
        name_key = NAME_BEARING_METHODS.get(method)
        if name_key is not None and isinstance(params.get(name_key), str):
            headers["mcp-name"] = encode_header_value(params[name_key])
        schema = exchange.notes.get("input_schema") if exchange is not None else None
        arguments = params.get("arguments")
        if method == "tools/call" and isinstance(schema, dict) and isinstance(arguments, dict):
            headers.update(mcp_param_headers(x_mcp_header_map(schema), arguments))
        return headers

    # ------------------------------------------------------------------------------- standing stream

    async def _standing_stream(self) -> None:
        """Listen for list_changed and resource updates until the connection ends; reopen on demand or loss."""
        while self._client is not None:
            with anyio.CancelScope() as self._listen_scope:
                await self._listen_once()
                await anyio.sleep(STANDING_RETRY_S)  # the server ended it: come back later, not in a tight loop

    async def _listen_once(self) -> None:
        if self._client is None:
            return
        try:
            if Era.MODERN in self._eras:
                wanted: JSON = dict(LIST_CHANGED)
                if self._watched:
                    wanted["resourceSubscriptions"] = sorted(self._watched)
                params = modern_params(None, {"notifications": wanted})
                body = {"jsonrpc": "2.0", "id": next(self._ids), "method": "subscriptions/listen", "params": params}
                headers = self._modern_headers("subscriptions/listen", params, None)
                response = await self._client.request("POST", headers, orjson.dumps(body))
            else:
                headers = {**self._legacy_headers(), "accept": "text/event-stream"}
                headers.pop("content-type")
                response = await self._client.request("GET", headers)
            try:
                if response.status_code != 200:
                    return
                async for event in iter_events(response.aiter_bytes(), self.settings.max_message_bytes):
                    message = _loads(event.data) if event.data else None
                    if message is not None:
                        await self._on_stream_message(message, None, Era.LEGACY)
            finally:
                await response.aclose()
        except (ConnectionLost, SseTooLargeError) as exc:
            log.debug("upstream %s: standing stream ended: %s", self.id, exc)

    async def _set_subscription(self, uri: str, on: bool) -> None:
        if Era.MODERN in self._eras:
            # The modern wire subscribes by re-listening with the new URI set (no resources/subscribe there).
            if self._listen_scope is not None:
                self._listen_scope.cancel()
            return
        await super()._set_subscription(uri, on)


def _loads(data: str | bytes) -> JSON | None:
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return message if isinstance(message, dict) else None


def _result_or_raise(response: JSON, what: str) -> JSON:
    result = response.get("result")
    if not isinstance(result, dict):
        raise UpstreamUnavailableError(detail=f"{what} failed: {response.get('error')}")
    return result

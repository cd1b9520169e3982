"""A JSON-RPC peer over one message stream, shared by many exchanges (stdio and legacy SSE upstreams).

One upstream session serves every caller, so ids and progress tokens are Portico's own on the upstream side
and are mapped back to the caller's on the way out. The stream carries no per-request channel, so a request
the server sends (sampling, elicitation, roots) is relayed to the one exchange in flight; when several are in
flight it cannot be attributed, and it is refused rather than guessed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson

from portico.errors import NoBackChannelError, UpstreamUnavailableError
from portico.types import JSON, Exchange
from portico.upstream.envelope import legacy_params
from portico.upstream.model import PORTICO_CLIENT_CAPABILITIES, PORTICO_CLIENT_INFO

log = logging.getLogger("portico.upstream")

SendBytes = Callable[[bytes], Awaitable[None]]
LATEST_HANDSHAKE = "2025-11-25"


@dataclass(slots=True)
class _Pending:
    exchange: Exchange | None
    done: anyio.Event = field(default_factory=anyio.Event)
    response: JSON | None = None
    client_token: Any = None


class RpcPeer:
    """Requests out, responses and server messages in. `feed` is called by the transport's reader task."""

    def __init__(
        self, server_id: str, send: SendBytes, on_notification: Callable[[str, JSON], Awaitable[None]]
    ) -> None:
        self._server_id = server_id
        self._send = send
        self._on_notification = on_notification
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._tokens: dict[str, _Pending] = {}
        self._closed: str | None = None

    async def handshake(self) -> JSON:
        """`initialize` + `notifications/initialized`; returns the InitializeResult."""
        response = await self.call(
            None,
            "initialize",
            {
                "protocolVersion": LATEST_HANDSHAKE,
                "capabilities": PORTICO_CLIENT_CAPABILITIES,
                "clientInfo": PORTICO_CLIENT_INFO,
            },
        )
        if "result" not in response:
            raise UpstreamUnavailableError(detail=f"initialize refused: {response.get('error')}")
        await self._send(orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        result: JSON = response["result"]
        if isinstance(result.get("capabilities"), dict) and "logging" in result["capabilities"]:
            # One upstream session serves every client: take all levels, filter per client at the edge.
            await self.call(None, "logging/setLevel", {"level": "debug"})
        return result

    async def call(self, exchange: Exchange | None, method: str, params: JSON) -> JSON:
        if self._closed is not None:
            raise UpstreamUnavailableError(detail=self._closed)
        request_id = next(self._ids)
        pending = _Pending(exchange)
        params = legacy_params(params)
        meta = params.get("_meta")
        if isinstance(meta, dict) and "progressToken" in meta:
            # Rewrite the caller's token: two callers may pick the same one on this shared session.
            pending.client_token = meta["progressToken"]
            token = f"p{request_id}"
            params = {**params, "_meta": {**meta, "progressToken": token}}
            self._tokens[token] = pending
        self._pending[request_id] = pending
        try:
            await self._send(orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
            await pending.done.wait()
        except BaseException:
            if request_id in self._pending and self._closed is None:
                with anyio.CancelScope(shield=True):
                    await self._cancel_upstream(request_id)
            raise
        finally:
            self._pending.pop(request_id, None)
            self._tokens.pop(f"p{request_id}", None)
        if pending.response is None:
            raise UpstreamUnavailableError(detail=self._closed or "connection closed")
        return pending.response

    async def _cancel_upstream(self, request_id: int) -> None:
        message = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
        try:
            with anyio.move_on_after(1):
                await self._send(orjson.dumps(message))
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    def close(self, reason: str) -> None:
        """Fail every call in flight (the connection is gone)."""
        self._closed = reason
        for pending in self._pending.values():
            pending.done.set()

    async def feed(self, raw: bytes | str, tg: anyio.abc.TaskGroup) -> None:
        """Handle one message from the upstream."""
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("upstream %s sent a line that is not JSON; ignored", self._server_id)
            return
        if not isinstance(message, dict):
            return
        if "method" not in message:
            request_id = message.get("id")
            pending = self._pending.get(request_id) if isinstance(request_id, int) else None
            if pending is not None:
                pending.response = message
                pending.done.set()
            return
        if "id" in message:
            tg.start_soon(self._answer_server_request, message)
            return
        await self._notification(message)

    async def _notification(self, message: JSON) -> None:
        method = message["method"]
        params = message.get("params") or {}
        if method == "notifications/progress" and isinstance(params, dict):
            pending = self._tokens.get(str(params.get("progressToken")))
            if pending is not None and pending.exchange is not None:
                await pending.exchange.sink.notify(
                    {**message, "params": {**params, "progressToken": pending.client_token}}
                )
            return
        if method == "notifications/message":
            exchanges = [p.exchange for p in self._pending.values() if p.exchange is not None]
            if len(exchanges) == 1:
                await exchanges[0].sink.notify(message)
            return
        await self._on_notification(method, params if isinstance(params, dict) else {})

    async def _answer_server_request(self, message: JSON) -> None:
        exchanges = [p.exchange for p in self._pending.values() if p.exchange is not None]
        reply: JSON
        if len(exchanges) == 1:
            try:
                reply = await exchanges[0].sink.request(message["method"], message.get("params"))
            except NoBackChannelError as exc:
                reply = {"error": exc.to_rpc().to_json()}
        elif message["method"] == "ping":
            reply = {"result": {}}
        else:
            reply = {"error": {"code": -32601, "message": "No single caller to relay this request to"}}
        body = {"jsonrpc": "2.0", "id": message["id"]}
        body.update({k: v for k, v in reply.items() if k in ("result", "error")})
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._send(orjson.dumps(body))

"""The Streamable HTTP endpoint, both eras, as one ASGI callable per mount (`/mcp` or `/servers/{id}/mcp`).

Era routing follows the spec: a request whose `MCP-Protocol-Version` header names a modern revision (or any
unknown value) takes the stateless 2026-07-28 path, validated by the SDK's own pure ladder
(`classify_inbound_request`, `validate_mcp_param_headers`); anything else is the handshake era with
`Mcp-Session-Id` sessions. Every JSON-RPC request becomes an `Exchange` and goes through the one pipeline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import anyio
import orjson
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
    unsupported_protocol_version_rejection,
    validate_mcp_param_headers,
)
from mcp_types.methods import CLIENT_REQUESTS
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION
from starlette.types import Receive, Scope, Send

from portico.errors import (
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    BodyTooLargeError,
    InvalidParamsError,
)
from portico.transport.guard import HostGuard, read_body
from portico.transport.resume import LogSink, StreamLog, parse_event_id, pump
from portico.transport.session import SessionRecord, SessionRuntime, SessionStore, new_session_id
from portico.transport.sink import HttpSink
from portico.types import JSON, Era, Exchange, Principal, Reply, RequestId, RpcError
from portico.upstream.envelope import META_LOG_LEVEL

log = logging.getLogger("portico.transport")

Pipeline = Callable[[Exchange], Awaitable[Reply]]
SchemaLookup = Callable[[str | None, str], Any]
# Who is calling, or the HTTP refusal to send instead (status, headers, JSON body): see portico.identity.gate.
Authenticate = Callable[[Scope, dict[str, str], str | None], Awaitable["Principal | Refusal"]]
KEEPALIVE_S = 15.0
WATCH_AFTER_S = 0.5
MODERN = "2026-07-28"
_MODERN_METHODS = frozenset(m for (m, v) in CLIENT_REQUESTS if v == MODERN)
_LEGACY_METHODS = frozenset(m for (m, v) in CLIENT_REQUESTS if v in HANDSHAKE_PROTOCOL_VERSIONS)


class McpEndpoint:
    """Serve one MCP URL. `scope` is None for the portal, else the server id of a per-server URL."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        sessions: SessionStore,
        runtime: SessionRuntime,
        guard: HostGuard,
        max_body_bytes: int,
        schema_lookup: SchemaLookup,
        standing_stream: Callable[[str, str | None, HttpSink], Awaitable[None]],
        on_session_end: Callable[[str], Awaitable[None]],
        authenticate: Authenticate | None = None,
        body_limit: Callable[[str | None, Principal], int] | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._sessions = sessions
        self._runtime = runtime
        self._guard = guard
        self._max_body = max_body_bytes
        self._schema = schema_lookup
        self._standing_stream = standing_stream
        self._on_session_end = on_session_end
        self._authenticate = authenticate or _anonymous
        self._body_limit = body_limit  # per caller and URL (public servers' anonymous callers get less)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, server: str | None) -> None:
        headers = _headers(scope)
        if not self._guard.host_ok(headers.get("host")):
            return await _plain(send, 421, b"Invalid Host header")
        if not self._guard.origin_ok(headers.get("origin")):
            return await _rpc_error(send, 403, None, RpcError(INVALID_REQUEST, "Forbidden: invalid Origin header"))
        caller = await self._authenticate(scope, headers, server)
        if isinstance(caller, Refusal):
            return await _send(send, caller.status, caller.body, list(caller.headers))
        principal = caller
        version = headers.get("mcp-protocol-version")
        modern = version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS
        method = scope["method"]
        if method == "POST":
            accept = headers.get("accept", "")
            wants_sse = "text/event-stream" in accept or "*/*" in accept
            if not ("application/json" in accept or "*/*" in accept) or not wants_sse:
                return await _rpc_error(
                    send,
                    406,
                    None,
                    RpcError(INVALID_REQUEST, "Not Acceptable: accept application/json and text/event-stream"),
                )
            if not headers.get("content-type", "").startswith("application/json"):
                return await _rpc_error(
                    send, 415, None, RpcError(INVALID_REQUEST, "Content-Type must be application/json")
                )
            try:
                limit = self._max_body if self._body_limit is None else self._body_limit(server, principal)
                body = await read_body(scope, receive, limit)
            except BodyTooLargeError as exc:
                return await _rpc_error(send, 413, None, exc.to_rpc())
            try:
                message = orjson.loads(body)
            except orjson.JSONDecodeError:
                return await _rpc_error(send, 400, None, RpcError(-32700, "Parse error: the body is not valid JSON"))
            if modern:
                await self._modern(scope, receive, send, server, headers, message, len(body), principal)
            else:
                await self._legacy(scope, receive, send, server, headers, message, len(body), principal)
        elif modern:
            await _send(send, 405, b"", [(b"allow", b"POST")])
        elif method == "GET":
            await self._get(scope, receive, send, server, headers, principal)
        elif method == "DELETE":
            await self._delete(send, server, headers, principal)
        else:
            await _send(send, 405, b"", [(b"allow", b"GET, POST, DELETE")])

    # ------------------------------------------------------------------------------------ modern era

    async def _modern(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        server: str | None,
        headers: dict[str, str],
        message: Any,
        size: int,
        principal: Principal,
    ) -> None:
        request_id = message.get("id") if isinstance(message, dict) else None
        problem = _envelope_problem(message)
        if isinstance(message, dict) and "id" not in message and "method" in message and problem is None:
            rejection = unsupported_protocol_version_rejection(headers.get("mcp-protocol-version", ""))
            if rejection is not None:
                return await _rejection(send, None, rejection)
            return await _send(send, 202, b"")
        if problem is not None:
            return await _rpc_error(send, 400, _safe_id(request_id), RpcError(INVALID_REQUEST, problem))
        duplicated = find_duplicated_routing_header((k.decode("latin-1"), "") for k, _ in scope["headers"])
        if duplicated is not None:
            rejection = InboundLadderRejection(-32020, f"{duplicated} header appears more than once")
            return await _rejection(send, request_id, rejection)
        verdict = classify_inbound_request(message, headers=headers)
        if isinstance(verdict, InboundLadderRejection):
            return await _rejection(send, request_id, verdict)
        method = message["method"]
        params = message.get("params") or {}
        if method not in _MODERN_METHODS:
            return await _rpc_error(send, 404, request_id, RpcError(METHOD_NOT_FOUND, "Method not found"))
        if method == "tools/call" and isinstance(params.get("name"), str):
            schema = self._schema(server, params["name"])
            arguments = params.get("arguments")
            if schema is not None and (arguments is None or isinstance(arguments, dict)):
                rejection = validate_mcp_param_headers(schema, arguments or {}, headers)
                if rejection is not None:
                    return await _rejection(send, request_id, rejection)
        exchange = Exchange(
            method=method,
            params=params,
            request_id=request_id,
            principal=principal,
            era=Era.MODERN,
            protocol_version=verdict.protocol_version,
            scope=server,
            query=url_query(scope),
            client_capabilities=verdict.client_capabilities if isinstance(verdict.client_capabilities, dict) else {},
            client_info=verdict.client_info if isinstance(verdict.client_info, dict) else None,
            log_level=_meta_log_level(params),
            request_bytes=size,
        )
        sink = HttpSink(
            send,
            sse="text/event-stream" in headers.get("accept", ""),
            headers=[],
            log_level=exchange.log_level,
            logs_opt_in=True,
        )
        exchange.sink = sink
        if method == "subscriptions/listen" and not sink.sse:
            return await _rpc_error(
                send, 406, request_id, RpcError(INVALID_REQUEST, "Not Acceptable: text/event-stream")
            )
        await self._run(exchange, sink, receive)

    # ------------------------------------------------------------------------------------ legacy era

    async def _legacy(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        server: str | None,
        headers: dict[str, str],
        message: Any,
        size: int,
        principal: Principal,
    ) -> None:
        session_id = headers.get("mcp-session-id")
        if (
            isinstance(message, dict)
            and "method" not in message
            and "id" in message
            and ("result" in message or "error" in message)
        ):
            # The client's answer to a request we relayed (sampling, elicitation, roots).
            record = await self._session(session_id, server, principal)
            if record is None:
                return await _rpc_error(send, 404, None, RpcError(INVALID_REQUEST, "Session not found"))
            self._runtime.deliver_answer(record.id, message)
            return await _send(send, 202, b"")
        problem = _envelope_problem(message)
        if problem is not None:
            request_id = message.get("id") if isinstance(message, dict) else None
            return await _rpc_error(send, 400, _safe_id(request_id), RpcError(INVALID_REQUEST, problem))
        method: str = message["method"]
        params = message.get("params") or {}
        request_id = message.get("id")
        if method == "initialize":
            return await self._initialize(receive, send, server, headers, message, size, principal)
        if session_id is None:
            return await _rpc_error(send, 400, request_id, RpcError(INVALID_REQUEST, "Bad Request: Missing session ID"))
        record = await self._session(session_id, server, principal)
        if record is None:
            return await _rpc_error(send, 404, request_id, RpcError(INVALID_REQUEST, "Session not found"))
        if "id" not in message:
            if method == "notifications/cancelled" and isinstance(params, dict):
                target = params.get("requestId")
                if isinstance(target, str | int):
                    self._runtime.cancel(record.id, target)
            return await _send(send, 202, b"")
        if method not in _LEGACY_METHODS:
            return await _rpc_error(send, 200, request_id, RpcError(METHOD_NOT_FOUND, "Method not found"))
        log = self._runtime.new_log(record.id)
        exchange = Exchange(
            method=method,
            params=params,
            request_id=request_id,
            principal=principal,
            era=Era.LEGACY,
            protocol_version=record.protocol_version,
            scope=server,
            query=url_query(scope),
            client_capabilities=record.client_capabilities,
            client_info=record.client_info,
            session_id=record.id,
            request_bytes=size,
            sink=LogSink(log, self._runtime, record.id, record.log_level),
            log_level=record.log_level,
        )
        self._runtime.spawn(lambda: self._detached(exchange, log))
        await self._attach(record.id, log, send, receive, start=0, prime=True)

    async def _detached(self, exchange: Exchange, log: StreamLog) -> None:
        """Run a legacy call independent of its HTTP request; its reply ends the call's `StreamLog`."""
        assert exchange.session_id is not None
        assert exchange.request_id is not None
        reply = Reply(error=RpcError(-32800, "Cancelled"))
        with anyio.CancelScope() as scope:
            self._runtime.track(exchange.session_id, exchange.request_id, scope)
            try:
                reply = await self._pipeline(exchange)
            finally:
                self._runtime.untrack(exchange.session_id, exchange.request_id)
        log.append(_encode_reply(exchange.request_id, reply), final=True)

    async def _attach(
        self, session_id: str, log: StreamLog, send: Send, receive: Receive, *, start: int, prime: bool
    ) -> None:
        """Stream `log` to this HTTP response; a disconnect detaches the client, it does not cancel the call."""
        finished = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
            finished = await pump(log, send, start, prime=prime)
            tg.cancel_scope.cancel()
        if finished:
            self._runtime.drop_log(session_id, log.id)

    async def _initialize(
        self,
        receive: Receive,
        send: Send,
        server: str | None,
        headers: dict[str, str],
        message: JSON,
        size: int,
        principal: Principal,
    ) -> None:
        params = message.get("params") or {}
        request_id = message.get("id")
        if request_id is None:
            return await _rpc_error(send, 400, None, RpcError(INVALID_REQUEST, "initialize must be a request"))
        if not isinstance(params.get("protocolVersion"), str) or not isinstance(params.get("capabilities"), dict):
            error = InvalidParamsError("Invalid params: initialize needs protocolVersion and capabilities")
            return await _rpc_error(send, 400, request_id, error.to_rpc())
        session_id = new_session_id()
        exchange = Exchange(
            method="initialize",
            params=params,
            request_id=request_id,
            principal=principal,
            era=Era.LEGACY,
            protocol_version=LATEST_HANDSHAKE_VERSION,
            scope=server,
            client_capabilities=params["capabilities"],
            client_info=params.get("clientInfo") if isinstance(params.get("clientInfo"), dict) else None,
            session_id=session_id,
            request_bytes=size,
        )
        reply = await self._pipeline(exchange)
        extra: list[tuple[bytes, bytes]] = []
        if reply.result is not None:
            record = SessionRecord(
                id=session_id,
                subject=principal.subject,
                scope=server,
                protocol_version=str(reply.result.get("protocolVersion", LATEST_HANDSHAKE_VERSION)),
                client_capabilities=exchange.client_capabilities,
                client_info=exchange.client_info,
                created=anyio.current_time(),
            )
            if not await self._sessions.create(record):
                return await _rpc_error(send, 503, request_id, RpcError(INVALID_REQUEST, "Too many sessions"))
            extra.append((b"mcp-session-id", session_id.encode()))
        await _send(send, 200, _encode_reply(request_id, reply), [(b"content-type", b"application/json"), *extra])

    async def _session(self, session_id: str | None, server: str | None, principal: Principal) -> SessionRecord | None:
        """The caller's live session on this endpoint; another principal's or endpoint's session is 'not found'."""
        if session_id is None or len(session_id) > 128:
            return None
        record = await self._sessions.get(session_id)
        if record is None or record.scope != server or record.subject != principal.subject:
            return None
        return record

    async def _get(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        server: str | None,
        headers: dict[str, str],
        principal: Principal,
    ) -> None:
        if "text/event-stream" not in headers.get("accept", ""):
            return await _rpc_error(send, 406, None, RpcError(INVALID_REQUEST, "Not Acceptable: text/event-stream"))
        record = await self._session(headers.get("mcp-session-id"), server, principal)
        if record is None:
            status = 400 if "mcp-session-id" not in headers else 404
            return await _rpc_error(send, status, None, RpcError(INVALID_REQUEST, "Session not found"))
        last_event = headers.get("last-event-id")
        if last_event is not None:
            position = parse_event_id(last_event)
            log = self._runtime.find_log(record.id, position[0]) if position is not None else None
            if position is None or log is None:
                return await _rpc_error(send, 404, None, RpcError(INVALID_REQUEST, "Unknown or expired event id"))
            return await self._attach(record.id, log, send, receive, start=position[1], prime=False)
        sink = HttpSink(send, sse=True, headers=[])
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
            await self._standing_stream(record.id, server, sink)
            tg.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await sink.end()

    async def _delete(self, send: Send, server: str | None, headers: dict[str, str], principal: Principal) -> None:
        record = await self._session(headers.get("mcp-session-id"), server, principal)
        if record is None:
            return await _rpc_error(send, 404, None, RpcError(INVALID_REQUEST, "Session not found"))
        await self._sessions.delete(record.id)
        self._runtime.end(record.id)
        await self._on_session_end(record.id)
        await _send(send, 200, b"")

    # --------------------------------------------------------------------------------------- running

    async def _run(self, exchange: Exchange, sink: HttpSink, receive: Receive) -> None:
        """Run a modern-era exchange in this request's task; the client closing its stream cancels it.

        Most calls finish in milliseconds, so the disconnect watcher and the SSE keepalive are started only
        for a call still running after `WATCH_AFTER_S` (a task group per request cost ~0.3 ms of CPU).
        """
        loop = asyncio.get_running_loop()
        helpers: list[asyncio.Task[None]] = []
        reply: Reply | None = None
        with anyio.CancelScope() as scope:

            def watch() -> None:
                helpers.append(loop.create_task(_cancel_on_disconnect(receive, scope)))
                helpers.append(loop.create_task(_keepalive(sink)))

            timer = loop.call_later(WATCH_AFTER_S, watch)
            try:
                reply = await self._pipeline(exchange)
            finally:
                timer.cancel()
                for helper in helpers:
                    helper.cancel()
        if reply is None:  # cancelled: the client is gone; a closing frame is harmless
            with anyio.CancelScope(shield=True):
                await sink.finish(200, _encode_reply(exchange.request_id, Reply(error=RpcError(-32800, "Cancelled"))))
            return
        status = 200
        if reply.error is not None:
            status = reply.http_status or ERROR_CODE_HTTP_STATUS.get(reply.error.code, 200)
        elif reply.result is not None and "resultType" not in reply.result:
            reply.result = {**reply.result, "resultType": "complete"}
            reply.encoded = None
        await sink.finish(status, _encode_reply(exchange.request_id, reply))


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _keepalive(sink: HttpSink) -> None:
    while True:
        await anyio.sleep(KEEPALIVE_S)
        await sink.keepalive()


@dataclass(frozen=True, slots=True)
class Refusal:
    """An HTTP answer that ends a request before it becomes an exchange (e.g. 401 with a bearer challenge)."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


async def _anonymous(scope: Scope, headers: dict[str, str], server: str | None) -> Principal | Refusal:
    return Principal.anonymous(scope["client"][0] if scope.get("client") else None)


def _headers(scope: Scope) -> dict[str, str]:
    # Values are trimmed here (RFC 9110 optional whitespace): httptools keeps trailing blanks.
    return {k.decode("latin-1"): v.decode("latin-1").strip(" \t") for k, v in scope["headers"]}


def _envelope_problem(message: Any) -> str | None:
    """Why `message` is not one JSON-RPC 2.0 request or notification (None if it is)."""
    if not isinstance(message, dict):
        return "Invalid request: expected one JSON-RPC 2.0 request or notification object (batches are not supported)"
    if message.get("jsonrpc") != "2.0":
        return 'Invalid request: "jsonrpc" must be "2.0"'
    if not isinstance(message.get("method"), str) or not message["method"]:
        return 'Invalid request: "method" must be a non-empty string'
    if "id" in message and (not isinstance(message["id"], str | int) or isinstance(message["id"], bool)):
        return 'Invalid request: "id" must be a string or an integer'
    if "params" in message and not isinstance(message["params"], dict):
        return 'Invalid request: "params" must be an object'
    return None


def _meta_log_level(params: JSON) -> str | None:
    meta = params.get("_meta")
    level = meta.get(META_LOG_LEVEL) if isinstance(meta, dict) else None
    return level if isinstance(level, str) else None


def _safe_id(request_id: Any) -> RequestId | None:
    return request_id if isinstance(request_id, str | int) and not isinstance(request_id, bool) else None


def _encode_reply(request_id: RequestId | None, reply: Reply) -> bytes:
    head = b'{"jsonrpc":"2.0","id":' + orjson.dumps(request_id)
    if reply.error is not None:
        return head + b',"error":' + orjson.dumps(reply.error.to_json()) + b"}"
    encoded = reply.encoded if reply.encoded is not None else orjson.dumps(reply.result)
    return head + b',"result":' + encoded + b"}"


async def _rejection(send: Send, request_id: Any, rejection: InboundLadderRejection) -> None:
    error = RpcError(rejection.code, rejection.message, rejection.data)
    await _rpc_error(send, ERROR_CODE_HTTP_STATUS.get(rejection.code, 400), _safe_id(request_id), error)


async def _rpc_error(send: Send, status: int, request_id: RequestId | None, error: RpcError) -> None:
    body = _encode_reply(request_id, Reply(error=error))
    await _send(send, status, body, [(b"content-type", b"application/json")])


async def _plain(send: Send, status: int, body: bytes) -> None:
    await _send(send, status, body, [(b"content-type", b"text/plain; charset=utf-8")])


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body, "more_body": False})


MAX_QUERY_BYTES = 1024
MAX_QUERY_KEYS = 16


def url_query(scope: Scope) -> dict[str, str]:
    """The MCP URL's query parameters (first value of each; at most 16 keys from the first KiB): Code Mode's
    `?codemode=` and `?lang=` ride on the URL the client was given."""
    raw = scope.get("query_string", b"")
    if not raw:
        return {}
    pairs = parse_qsl(raw[:MAX_QUERY_BYTES].decode("latin-1"), keep_blank_values=True)
    query: dict[str, str] = {}
    for key, value in pairs:
        if key not in query and len(query) < MAX_QUERY_KEYS:
            query[key] = value
    return query

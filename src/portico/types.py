"""The shared vocabulary of Portico, on one page.

Every layer may import this module; it imports nothing of Portico's. The flow it describes:

    transport  ──parses a JSON-RPC request into──▶  Exchange
    pipeline   ──passes the Exchange through Stage, Stage, …, terminal──▶  Reply
    transport  ──writes the Reply (and any Messages sent on the way) back to the client

An `Exchange` is one JSON-RPC request from one principal, whatever the method: a `tools/call` on the portal, a
`resources/read` on a per-server URL, or an inner call made by Code Mode. A `Stage` may read and annotate it,
answer it itself (deny, error), or hand it on with `call_next`.
"""

from __future__ import annotations

import enum
import itertools
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

JSON = dict[str, Any]
RequestId = str | int


class Era(enum.StrEnum):
    """Which generation of the MCP wire a client or upstream speaks."""

    LEGACY = "legacy"  # initialize handshake, sessions (2024-11-05 … 2025-11-25)
    MODERN = "modern"  # per-request `_meta` envelope, stateless (2026-07-28 …)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. Built by the identity stage (or the ASGI auth layer) before anything else sees the call."""

    subject: str
    groups: frozenset[str] = frozenset()
    client_id: str | None = None
    authenticated_by: str = "none"  # "none" (auth disabled on loopback), "jwt", "api_key"
    mfa: bool = False
    device_id: str | None = None
    ip: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def anonymous(cls, ip: str | None = None) -> Principal:
        return cls(subject="anonymous", ip=ip)


class MessageSink(Protocol):
    """Where messages sent *during* an exchange go: progress and log notifications, server-to-client requests.

    The transport provides it (an SSE stream for the calling request); Code Mode provides one that captures.
    """

    async def notify(self, message: JSON) -> None:
        """Deliver a JSON-RPC notification to the client of this exchange (best effort)."""

    async def request(self, method: str, params: JSON | None) -> JSON:
        """Send a server-to-client request (sampling, elicitation, roots) and wait for the client's reply.

        Returns the JSON-RPC response object (`result` or `error`). Raises `NoBackChannelError` when the client
        cannot receive requests on this wire.
        """

    async def poll(self, retry_ms: int) -> None:
        """The upstream asked its caller to reconnect in `retry_ms` (SSE polling); mirror it where the wire can."""


class NullSink:
    """A sink for exchanges nobody listens to: notifications are dropped, requests are refused."""

    async def notify(self, message: JSON) -> None:
        return None

    async def request(self, method: str, params: JSON | None) -> JSON:
        from portico.errors import NoBackChannelError

        raise NoBackChannelError(method)

    async def poll(self, retry_ms: int) -> None:
        return None


_exchange_ids = itertools.count(1)
_process_tag = f"{os.getpid():x}{int(time.time()) & 0xFFFFFF:06x}"


def new_exchange_id() -> str:
    """A process-unique, roughly ordered id for an exchange (cheaper than uuid4 on the hot path)."""
    return f"{_process_tag}-{next(_exchange_ids):x}"


@dataclass(slots=True)
class Exchange:
    """One JSON-RPC request on its way through the pipeline.

    `params` is the request's params as received (already decoded JSON). `scope` names the endpoint: `None` for
    the portal (`/mcp`), a server id for `/servers/{id}/mcp`. The route stage fills `server_id` and `target`
    (the upstream's own name for the tool, prompt or resource URI). Stages record what they decided in `notes`,
    which the audit stage persists.
    """

    method: str
    params: JSON
    request_id: RequestId | None
    principal: Principal
    era: Era
    protocol_version: str
    scope: str | None = None
    client_capabilities: JSON = field(default_factory=dict)
    client_info: JSON | None = None
    session_id: str | None = None
    parent_id: str | None = None
    sink: MessageSink = field(default_factory=NullSink)
    log_level: str | None = None  # the client's logging level (legacy: logging/setLevel; modern: _meta logLevel)
    request_bytes: int = 0
    query: Mapping[str, str] = field(default_factory=dict)  # the MCP URL's query parameters (`?codemode=…`)
    id: str = field(default_factory=new_exchange_id)
    started_ns: int = field(default_factory=time.perf_counter_ns)
    server_id: str | None = None
    target: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def internal(cls, method: str, era: Era) -> Exchange:
        """An exchange Portico makes for itself (catalog listing, subscriptions), not on a client's behalf."""
        return cls(
            method=method,
            params={},
            request_id=None,
            principal=Principal("portico"),
            era=era,
            protocol_version="",
            client_capabilities={},
        )


@dataclass(frozen=True, slots=True)
class RpcError:
    """A JSON-RPC error object. `message` is public; nothing private may be put here."""

    code: int
    message: str
    data: Any = None

    def to_json(self) -> JSON:
        body: JSON = {"code": self.code, "message": self.message}
        if self.data is not None:
            body["data"] = self.data
        return body


class Outcome(enum.StrEnum):
    """How an exchange ended, as the audit log and metrics see it."""

    OK = "ok"
    TOOL_ERROR = "tool_error"  # the upstream answered with isError: a tool failure, not a protocol error
    DENIED = "denied"  # an enforcement stage refused it
    ERROR = "error"  # a protocol, routing or upstream error


@dataclass(slots=True)
class Reply:
    """The answer to an exchange: exactly one of `result` and `error`."""

    result: JSON | None = None
    error: RpcError | None = None
    outcome: Outcome = Outcome.OK
    http_status: int | None = None  # set only when the wire status must differ from the era's default
    encoded: bytes | None = None  # `result` serialized once (orjson), reused by audit sizing and the transport

    @classmethod
    def ok(cls, result: JSON) -> Reply:
        outcome = Outcome.TOOL_ERROR if result.get("isError") is True else Outcome.OK
        return cls(result=result, outcome=outcome)

    @classmethod
    def fail(cls, error: RpcError, outcome: Outcome = Outcome.ERROR) -> Reply:
        return cls(error=error, outcome=outcome)


CallNext = Callable[[Exchange], Awaitable[Reply]]


class Stage(Protocol):
    """One link of the pipeline. May answer without calling `call_next` (deny, cached answer, error)."""

    async def __call__(self, exchange: Exchange, call_next: CallNext) -> Reply: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """An allow/deny with the rule that made it and why, for the audit log and `policy explain`."""

    allowed: bool
    rule: str
    reason: str


def elapsed_ms(exchange: Exchange) -> float:
    return (time.perf_counter_ns() - exchange.started_ns) / 1e6

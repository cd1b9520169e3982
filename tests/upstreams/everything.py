"""An "everything-shaped" MCP server: every tool, resource and prompt the conformance suite names.

Built on the SDK's low-level `Server` (so the wire shapes are explicit, the way a proxy sees
them) and served in both protocol eras from one Streamable HTTP endpoint:

* 2025-11-25: ``initialize`` handshake, ``Mcp-Session-Id`` sessions, server-to-client requests
  (sampling, elicitation, roots) on the POST's SSE stream, resumable streams (event store).
* 2026-07-28: stateless per-request ``_meta`` envelope, ``server/discover``,
  ``subscriptions/listen``; server-to-client requests become ``InputRequiredResult`` rounds.

Tools that need client input are written once against `Asker.ask`, which sends standalone
requests mid-call in the 2025 era and returns an ``InputRequiredResult`` in the 2026 era.

Run: ``python -m tests.upstreams.everything --transport http|stdio|sse [--port 0]``.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import struct
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.caching import CacheHint
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import JSONRPCMessage

from tests.upstreams._common import (
    NO_ARGS,
    Ctx,
    LegacySessions,
    compact,
    declares,
    error_result,
    is_modern,
    missing_capability,
    session_key,
    text,
    unknown_tool,
)
from tests.upstreams._serve import advertise_list_changed, serve

NAME = "portico-everything"
VERSION = "1.0.0"

ToolResult = types.CallToolResult | types.InputRequiredResult
Answers = dict[str, dict[str, Any]]


# --------------------------------------------------------------------------------------------
# Binary payloads (generated, not embedded)


def _png(rgb: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    """A 1x1 RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + bytes(rgb))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _wav(milliseconds: int = 20, rate: int = 8000) -> bytes:
    """A short mono 16-bit PCM WAV of silence."""
    data = b"\x00\x00" * (rate * milliseconds // 1000)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVE"
        + b"fmt "
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


PNG_B64 = base64.b64encode(_png()).decode()
WAV_B64 = base64.b64encode(_wav()).decode()

# --------------------------------------------------------------------------------------------
# Resumable SSE streams (2025 era): the SDK ships only the EventStore interface.


class MemoryEventStore(EventStore):
    """Bounded in-memory event log, enough for ``Last-Event-ID`` replay in tests."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._events: deque[tuple[EventId, StreamId, JSONRPCMessage | None]] = deque(maxlen=capacity)
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = str(next(self._ids))
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        events = list(self._events)
        position = next((i for i, (event_id, _, _) in enumerate(events) if event_id == last_event_id), None)
        if position is None:
            return None
        stream_id = events[position][1]
        for event_id, event_stream, message in events[position + 1 :]:
            if event_stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


# --------------------------------------------------------------------------------------------
# Asking the client for input, in either era


def elicit(message: str, schema: dict[str, Any]) -> types.ElicitRequest:
    return types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=schema))


def sample(prompt: str, max_tokens: int = 100) -> types.CreateMessageRequest:
    message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))
    return types.CreateMessageRequest(
        params=types.CreateMessageRequestParams(messages=[message], max_tokens=max_tokens)
    )


def list_roots() -> types.ListRootsRequest:
    return types.ListRootsRequest()


_CAPABILITY = {"elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots"}
_RESULT_TYPE: dict[str, type[types.Result]] = {
    "elicitation/create": types.ElicitResult,
    "sampling/createMessage": types.CreateMessageResult,
    "roots/list": types.ListRootsResult,
}
_RESULT_SHAPE = {"elicitation/create": "action", "sampling/createMessage": "role", "roots/list": "roots"}


@dataclass
class Asker:
    """Gathers answers to input requests for one incoming request.

    2025 era: each request goes to the client mid-call on this request's stream and the call
    blocks for the answer. 2026 era: answers come from the retry's ``inputResponses``; anything
    missing (or malformed) is asked for again in an ``InputRequiredResult``.
    """

    ctx: Ctx
    params: types.InputResponseRequestParams

    @property
    def request_state(self) -> str | None:
        return self.params.request_state

    async def ask(
        self, requests: dict[str, types.InputRequest], state: str | None = None
    ) -> Answers | types.InputRequiredResult:
        for request in requests.values():
            if not declares(self.ctx, _CAPABILITY[request.method]):
                raise missing_capability(_CAPABILITY[request.method])
        if not is_modern(self.ctx):
            answers: Answers = {}
            for key, request in requests.items():
                result = await self.ctx.session.send_request(
                    request,
                    _RESULT_TYPE[request.method],
                    metadata=ServerMessageMetadata(related_request_id=self.ctx.request_id),
                )
                answers[key] = result.model_dump(by_alias=True, mode="json", exclude_none=True)
            return answers
        given = {
            key: value.model_dump(by_alias=True, mode="json", exclude_none=True)
            for key, value in (self.params.input_responses or {}).items()
        }
        answers = {
            key: given[key]
            for key, request in requests.items()
            if key in given and _RESULT_SHAPE[request.method] in given[key]
        }
        if len(answers) == len(requests):
            return answers
        return types.InputRequiredResult(
            input_requests={key: request for key, request in requests.items() if key not in answers},
            request_state=state,
        )


def _sampled_text(answer: dict[str, Any]) -> str:
    content = answer.get("content")
    if isinstance(content, list):
        content = next((c for c in content if isinstance(c, dict) and c.get("type") == "text"), {})
    return str(content.get("text", "")) if isinstance(content, dict) else ""


def _elicited(answer: dict[str, Any], field_name: str, default: str = "") -> str:
    content = answer.get("content") or {}
    return str(content.get(field_name, default)) if answer.get("action") == "accept" else default


def _elicitation_summary(answer: dict[str, Any], prefix: str) -> str:
    return f"{prefix}: action={answer.get('action')}, content={compact(answer.get('content') or {})}"


# --------------------------------------------------------------------------------------------
# Schemas the scenarios pin


JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}

USER_INFO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    },
    "required": ["username", "email"],
}

DEFAULTS_SCHEMA: dict[str, Any] = {  # SEP-1034
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Name", "default": "John Doe"},
        "age": {"type": "integer", "title": "Age", "default": 30},
        "score": {"type": "number", "title": "Score", "default": 95.5},
        "status": {"type": "string", "title": "Status", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "title": "Verified", "default": True},
    },
}

ENUMS_SCHEMA: dict[str, Any] = {  # SEP-1330: the five enum shapes
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
}


def _single_field(name: str, kind: str = "string") -> dict[str, Any]:
    return {"type": "object", "properties": {name: {"type": kind}}, "required": [name]}


# --------------------------------------------------------------------------------------------
# The server


ToolHandler = Callable[[Ctx, dict[str, Any], Asker], Awaitable[ToolResult]]

STATIC_TEXT = "This is the content of the static text resource."
TEMPLATE = re.compile(r"^test://template/(?P<id>[^/]+)/data$")
LOG_LEVELS: Sequence[types.LoggingLevel] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)


@dataclass
class _ToolEntry:
    tool: types.Tool
    handler: ToolHandler


@dataclass
class Everything:
    """State and handlers; `build()` wires them into a low-level `Server`."""

    bus: InMemorySubscriptionBus = field(default_factory=InMemorySubscriptionBus)
    sessions: LegacySessions = field(default_factory=LegacySessions)
    tools: dict[str, _ToolEntry] = field(default_factory=dict)
    dynamic_tool_on: bool = False
    dynamic_prompt_on: bool = False
    log_levels: dict[str, types.LoggingLevel] = field(default_factory=dict)
    subscriptions: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._register_tools()

    # -- tools -------------------------------------------------------------------------------

    def _add(self, name: str, description: str, handler: ToolHandler, schema: dict[str, Any] | None = None) -> None:
        tool = types.Tool(name=name, description=description, input_schema=schema or NO_ARGS)
        self.tools[name] = _ToolEntry(tool, handler)

    def _register_tools(self) -> None:
        add = self._add
        # First in the list on purpose: http-header-validation calls tools[0] with no arguments.
        add("test_simple_text", "Returns a simple text response", self.simple_text)
        add("test_image_content", "Returns a 1x1 PNG image", self.image_content)
        add("test_audio_content", "Returns a short WAV clip", self.audio_content)
        add("test_embedded_resource", "Returns an embedded text resource", self.embedded_resource)
        add("test_multiple_content_types", "Returns text, image and an embedded resource", self.mixed_content)
        add("test_tool_with_logging", "Sends three info log notifications while running", self.with_logging)
        add("test_logging_tool", "Sends one info log notification", self.logging_tool)
        add("test_tool_with_progress", "Reports progress 0, 50, 100 of 100", self.with_progress)
        add("test_error_handling", "Always fails with isError", self.error_handling)
        add(
            "test_sampling",
            "Asks the client's LLM to answer a prompt (sampling)",
            self.sampling,
            {"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]},
        )
        add(
            "test_elicitation",
            "Asks the user for a username and email (elicitation)",
            self.elicitation,
            {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
        )
        add("test_elicitation_sep1034_defaults", "Elicitation with defaults for every primitive", self.defaults)
        add("test_elicitation_sep1330_enums", "Elicitation with all five enum schema shapes", self.enums)
        add("test_streaming_elicitation", "Elicitation on the request's own stream", self.streaming_elicitation)
        add("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", self.json_schema, JSON_SCHEMA_2020_12)
        add(
            "test_header_param",
            "Echoes a parameter mirrored into the Mcp-Param-Region header (SEP-2243)",
            self.header_param,
            {
                "type": "object",
                "properties": {"region": {"type": "string", "description": "Region name", "x-mcp-header": "Region"}},
                "required": ["region"],
            },
        )
        add("test_reconnection", "Closes its SSE stream mid-call; the result arrives on resume", self.reconnection)
        add("test_missing_capability", "Requires the client's sampling capability", self.missing_capability)
        add("test_trigger_tool_change", "Adds or removes test_dynamic_tool", self.trigger_tool_change)
        add("test_trigger_prompt_change", "Adds or removes test_dynamic_prompt", self.trigger_prompt_change)
        add(
            "test_trigger_resource_update",
            "Announces that a resource changed",
            self.trigger_resource_update,
            {"type": "object", "properties": {"uri": {"type": "string"}}},
        )
        add("test_input_required_result_elicitation", "Asks for a name (input round)", self.irr_elicitation)
        add("test_input_required_result_sampling", "Asks the client's LLM a question (input round)", self.irr_sampling)
        add("test_input_required_result_list_roots", "Asks for the client's roots (input round)", self.irr_roots)
        add("test_input_required_result_request_state", "Round trip of opaque request state", self.irr_state)
        add("test_input_required_result_multiple_inputs", "Three input requests in one round", self.irr_multiple)
        add("test_input_required_result_multi_round", "Two input rounds with evolving state", self.irr_multi_round)
        add("test_input_required_result_tampered_state", "Rejects tampered request state", self.irr_tampered)
        add("test_input_required_result_capabilities", "Asks only what the client declared", self.irr_capabilities)

    async def simple_text(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        return text("This is a simple text response for testing.")

    async def image_content(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        return types.CallToolResult(content=[types.ImageContent(type="image", data=PNG_B64, mime_type="image/png")])

    async def audio_content(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        return types.CallToolResult(content=[types.AudioContent(type="audio", data=WAV_B64, mime_type="audio/wav")])

    async def embedded_resource(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        resource = types.TextResourceContents(
            uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
        )
        return types.CallToolResult(content=[types.EmbeddedResource(type="resource", resource=resource)])

    async def mixed_content(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        resource = types.TextResourceContents(
            uri="test://mixed-content-resource", mime_type="application/json", text='{"test":"data","value":123}'
        )
        return types.CallToolResult(
            content=[
                types.TextContent(type="text", text="Multiple content types test:"),
                types.ImageContent(type="image", data=PNG_B64, mime_type="image/png"),
                types.EmbeddedResource(type="resource", resource=resource),
            ]
        )

    async def _log(self, ctx: Ctx, level: types.LoggingLevel, message: str) -> None:
        """A ``notifications/message`` on this request's stream.

        2025 era: filtered by this session's ``logging/setLevel``. 2026 era: the SDK only sends
        it if the request's ``_meta`` opted in to a log level (and drops it otherwise).
        """
        threshold = self.log_levels.get(session_key(ctx))
        if threshold is not None and LOG_LEVELS.index(level) < LOG_LEVELS.index(threshold):
            return
        await ctx.session.send_log_message(level, message, logger=NAME, related_request_id=ctx.request_id)  # pyright: ignore[reportDeprecated]

    async def with_logging(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        await self._log(ctx, "info", "Tool execution started")
        await anyio.sleep(0.05)
        await self._log(ctx, "info", "Tool processing data")
        await anyio.sleep(0.05)
        await self._log(ctx, "info", "Tool execution completed")
        return text("Tool with logging executed successfully")

    async def logging_tool(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        await self._log(ctx, "info", "test_logging_tool ran")
        return text("Logged one message (delivered only if the request opted in)")

    async def with_progress(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        for step, progress in enumerate((0.0, 50.0, 100.0)):
            if step:
                await anyio.sleep(0.05)
            await ctx.session.report_progress(progress, 100.0, f"step {step + 1} of 3")
        return text("Tool with progress executed successfully")

    async def error_handling(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        return error_result("This tool intentionally returns an error for testing")

    async def sampling(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        answers = await asker.ask({"sample": sample(str(args.get("prompt", "")), max_tokens=100)})
        if isinstance(answers, types.InputRequiredResult):
            return answers
        return text(f"LLM response: {_sampled_text(answers['sample'])}")

    async def elicitation(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        answers = await asker.ask({"user_info": elicit(str(args.get("message", "")), USER_INFO_SCHEMA)})
        if isinstance(answers, types.InputRequiredResult):
            return answers
        return text(_elicitation_summary(answers["user_info"], "User response"))

    async def defaults(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        answers = await asker.ask({"defaults": elicit("Please review and update the form fields", DEFAULTS_SCHEMA)})
        if isinstance(answers, types.InputRequiredResult):
            return answers
        return text(_elicitation_summary(answers["defaults"], "Elicitation completed"))

    async def enums(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        answers = await asker.ask({"enums": elicit("Please pick from each kind of list", ENUMS_SCHEMA)})
        if isinstance(answers, types.InputRequiredResult):
            return answers
        return text(_elicitation_summary(answers["enums"], "Elicitation completed"))

    async def streaming_elicitation(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        await ctx.session.report_progress(0.0, 1.0, "asking")
        answers = await asker.ask({"confirm": elicit("Continue?", _single_field("ok", "boolean"))})
        if isinstance(answers, types.InputRequiredResult):
            return answers
        return text(_elicitation_summary(answers["confirm"], "Elicitation completed"))

    async def json_schema(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        return text(f"Received: {compact(args)}")

    async def header_param(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        return text(f"region={args.get('region')}")

    async def reconnection(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        # 2025 era with an event store: end the POST's SSE stream now; the client resumes with
        # GET + Last-Event-ID and receives the result from the event store. A no-op otherwise.
        if ctx.close_sse_stream is not None:
            await anyio.sleep(0.05)
            await ctx.close_sse_stream()
            await anyio.sleep(0.2)
        return text("Reconnection test completed")

    async def missing_capability(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        if not declares(ctx, "sampling"):
            raise missing_capability("sampling")
        return text("The client declared sampling")

    async def trigger_tool_change(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        self.dynamic_tool_on = not self.dynamic_tool_on
        await self.bus.publish(ToolsListChanged())
        await self.sessions.broadcast(lambda session: session.send_tool_list_changed())
        return text(f"test_dynamic_tool is now {'listed' if self.dynamic_tool_on else 'gone'}")

    async def trigger_prompt_change(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        self.dynamic_prompt_on = not self.dynamic_prompt_on
        await self.bus.publish(PromptsListChanged())
        await self.sessions.broadcast(lambda session: session.send_prompt_list_changed())
        return text(f"test_dynamic_prompt is now {'listed' if self.dynamic_prompt_on else 'gone'}")

    async def trigger_resource_update(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        uri = str(args.get("uri") or "test://watched-resource")
        await self.bus.publish(ResourceUpdated(uri=uri))
        watchers = {key for key, uris in self.subscriptions.items() if uri in uris}

        async def notify(session: Any) -> None:
            await session.send_resource_updated(uri)

        if watchers:
            await self.sessions.broadcast(notify)
        return text(f"announced an update of {uri} to {len(watchers)} 2025-era subscriber(s)")

    async def dynamic(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        return text("I come and go")

    # -- SEP-2322 input rounds -----------------------------------------------------------------

    async def irr_elicitation(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        answers = await asker.ask({"user_name": elicit("What is your name?", _single_field("name"))})
        if isinstance(answers, types.InputRequiredResult):
            return answers
        return text(f"Hello, {_elicited(answers['user_name'], 'name', 'stranger')}!")

    async def irr_sampling(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        answers = await asker.ask({"capital_question": sample("What is the capital of France?", max_tokens=100)})
        if isinstance(answers, types.InputRequiredResult):
            return answers
        return text(f"The model said: {_sampled_text(answers['capital_question'])}")

    async def irr_roots(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        answers = await asker.ask({"client_roots": list_roots()})
        if isinstance(answers, types.InputRequiredResult):
            return answers
        roots = answers["client_roots"].get("roots") or []
        return text("Client roots: " + ", ".join(str(root.get("uri")) for root in roots))

    async def irr_state(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        state = "awaiting-confirmation"
        if is_modern(ctx) and asker.request_state is not None and asker.request_state != state:
            raise MCPError(code=types.INVALID_PARAMS, message="requestState does not belong to this round")
        answers = await asker.ask({"confirm": elicit("Please confirm", _single_field("ok", "boolean"))}, state=state)
        if isinstance(answers, types.InputRequiredResult):
            return answers
        return text(f"state-ok: confirmed={_elicited(answers['confirm'], 'ok', 'False')}")

    async def irr_multiple(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        answers = await asker.ask(
            {
                "user_name": elicit("What is your name?", _single_field("name")),
                "greeting": sample("Generate a greeting", max_tokens=50),
                "client_roots": list_roots(),
            },
            state="awaiting-three-answers",
        )
        if isinstance(answers, types.InputRequiredResult):
            return answers
        name = _elicited(answers["user_name"], "name", "stranger")
        roots = len(answers["client_roots"].get("roots") or [])
        return text(f"{_sampled_text(answers['greeting'])} {name} ({roots} root(s))")

    async def irr_multi_round(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        state = asker.request_state or ""
        if state.startswith("round-2:"):
            name = state.removeprefix("round-2:")
        else:
            first = await asker.ask(
                {"step1": elicit("Step 1: What is your name?", _single_field("name"))}, state="round-1"
            )
            if isinstance(first, types.InputRequiredResult):
                return first
            name = _elicited(first["step1"], "name", "stranger")
        second = await asker.ask(
            {"step2": elicit("Step 2: What is your favorite color?", _single_field("color"))},
            state=f"round-2:{name}",
        )
        if isinstance(second, types.InputRequiredResult):
            return second
        return text(f"{name} likes {_elicited(second['step2'], 'color', 'no colour')}")

    async def irr_tampered(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        # The SDK's RequestStateBoundary seals this state (AES-GCM) and rejects a modified echo
        # with -32602 before this handler runs.
        answers = await asker.ask({"confirm": elicit("Please confirm", _single_field("ok", "boolean"))}, state="sealed")
        if isinstance(answers, types.InputRequiredResult):
            return answers
        return text("state verified")

    async def irr_capabilities(self, ctx: Ctx, args: dict[str, Any], asker: Asker) -> ToolResult:
        wanted: dict[str, types.InputRequest] = {
            "user_name": elicit("What is your name?", _single_field("name")),
            "greeting": sample("Generate a greeting", max_tokens=50),
            "client_roots": list_roots(),
        }
        allowed = {key: request for key, request in wanted.items() if declares(ctx, _CAPABILITY[request.method])}
        if not allowed:
            return text("The client declared no input capability; nothing to ask")
        answers = await asker.ask(allowed, state="capabilities")
        if isinstance(answers, types.InputRequiredResult):
            return answers
        return text(f"Answered: {', '.join(sorted(answers))}")

    # -- handlers ------------------------------------------------------------------------------

    def _tool_entries(self) -> list[_ToolEntry]:
        entries = list(self.tools.values())
        if self.dynamic_tool_on:
            entries.append(
                _ToolEntry(
                    types.Tool(name="test_dynamic_tool", description="Dynamic", input_schema=NO_ARGS), self.dynamic
                )
            )
        return entries

    def input_schema(self, name: str) -> dict[str, Any] | None:
        entry = self.tools.get(name)
        return entry.tool.input_schema if entry is not None else None

    async def list_tools(self, ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[entry.tool for entry in self._tool_entries()])

    async def call_tool(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        entry = next((e for e in self._tool_entries() if e.tool.name == params.name), None)
        if entry is None:
            raise unknown_tool(params.name)
        return await entry.handler(ctx, params.arguments or {}, Asker(ctx, params))

    async def list_prompts(self, ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        def argument(name: str, description: str) -> types.PromptArgument:
            return types.PromptArgument(name=name, description=description, required=True)

        prompts = [
            types.Prompt(name="test_simple_prompt", description="A simple prompt without arguments"),
            types.Prompt(
                name="test_prompt_with_arguments",
                description="A prompt with two required arguments",
                arguments=[argument("arg1", "First test argument"), argument("arg2", "Second test argument")],
            ),
            types.Prompt(
                name="test_prompt_with_embedded_resource",
                description="A prompt embedding a resource",
                arguments=[argument("resourceUri", "URI of the resource to embed")],
            ),
            types.Prompt(name="test_prompt_with_image", description="A prompt with an image"),
            types.Prompt(name="test_input_required_result_prompt", description="A prompt that first asks for context"),
        ]
        if self.dynamic_prompt_on:
            prompts.append(types.Prompt(name="test_dynamic_prompt", description="A prompt that comes and goes"))
        return types.ListPromptsResult(prompts=prompts)

    async def get_prompt(
        self, ctx: Ctx, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        args = params.arguments or {}

        def user(content: types.ContentBlock) -> types.PromptMessage:
            return types.PromptMessage(role="user", content=content)

        def said(value: str) -> types.TextContent:
            return types.TextContent(type="text", text=value)

        match params.name:
            case "test_simple_prompt":
                messages = [user(said("This is a simple prompt for testing."))]
            case "test_prompt_with_arguments":
                messages = [user(said(f"Prompt with arguments: arg1='{args.get('arg1')}', arg2='{args.get('arg2')}'"))]
            case "test_prompt_with_embedded_resource":
                resource = types.TextResourceContents(
                    uri=args.get("resourceUri") or "test://example-resource",
                    mime_type="text/plain",
                    text="Embedded resource content for testing.",
                )
                messages = [
                    user(types.EmbeddedResource(type="resource", resource=resource)),
                    user(said("Please process the embedded resource above.")),
                ]
            case "test_prompt_with_image":
                messages = [
                    user(types.ImageContent(type="image", data=PNG_B64, mime_type="image/png")),
                    user(said("Please analyze the image above.")),
                ]
            case "test_input_required_result_prompt":
                asker = Asker(ctx, params)
                answers = await asker.ask(
                    {"user_context": elicit("What context should the prompt use?", _single_field("context"))}
                )
                if isinstance(answers, types.InputRequiredResult):
                    return answers
                messages = [user(said(f"Use this context: {_elicited(answers['user_context'], 'context')}"))]
            case "test_dynamic_prompt" if self.dynamic_prompt_on:
                messages = [user(said("I come and go"))]
            case _:
                raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {params.name}")
        return types.GetPromptResult(description=f"{params.name} output", messages=messages)

    async def list_resources(self, ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        return types.ListResourcesResult(
            resources=[
                types.Resource(
                    uri="test://static-text",
                    name="static-text",
                    description="A static text resource",
                    mime_type="text/plain",
                ),
                types.Resource(
                    uri="test://static-binary",
                    name="static-binary",
                    description="A static binary resource (1x1 PNG)",
                    mime_type="image/png",
                ),
                types.Resource(
                    uri="test://watched-resource",
                    name="watched-resource",
                    description="A resource to subscribe to",
                    mime_type="text/plain",
                ),
            ]
        )

    async def list_resource_templates(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(
            resource_templates=[
                types.ResourceTemplate(
                    uri_template="test://template/{id}/data",
                    name="template-data",
                    description="JSON data for any id",
                    mime_type="application/json",
                )
            ]
        )

    async def read_resource(self, ctx: Ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        contents: types.TextResourceContents | types.BlobResourceContents
        if uri == "test://static-text":
            contents = types.TextResourceContents(uri=uri, mime_type="text/plain", text=STATIC_TEXT)
        elif uri == "test://static-binary":
            contents = types.BlobResourceContents(uri=uri, mime_type="image/png", blob=PNG_B64)
        elif uri == "test://watched-resource":
            contents = types.TextResourceContents(uri=uri, mime_type="text/plain", text="Watched resource content.")
        elif match := TEMPLATE.match(uri):
            body = {"id": match["id"], "templateTest": True, "data": f"Data for ID: {match['id']}"}
            contents = types.TextResourceContents(uri=uri, mime_type="application/json", text=json.dumps(body))
        else:
            raise MCPError(code=types.INVALID_PARAMS, message="Resource not found", data={"uri": uri})
        return types.ReadResourceResult(contents=[contents])

    async def subscribe(self, ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        self.subscriptions.setdefault(session_key(ctx), set()).add(str(params.uri))
        return types.EmptyResult()

    async def unsubscribe(self, ctx: Ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        self.subscriptions.get(session_key(ctx), set()).discard(str(params.uri))
        return types.EmptyResult()

    async def set_level(self, ctx: Ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
        self.log_levels[session_key(ctx)] = params.level
        return types.EmptyResult()

    async def complete(self, ctx: Ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
        ref, argument = params.ref, params.argument
        candidates: list[str] = []
        if isinstance(ref, types.PromptReference) and ref.name == "test_prompt_with_arguments":
            candidates = ["paris", "park", "party", "hello", "world"]
        elif isinstance(ref, types.ResourceTemplateReference) and argument.name == "id":
            candidates = ["1", "2", "3", "123"]
        values = [value for value in candidates if value.startswith(argument.value)]
        return types.CompleteResult(completion=types.Completion(values=values, total=len(values), has_more=False))

    def build(self) -> Server[Any]:
        cacheable = ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read")
        server: Server[Any] = Server(
            NAME,
            version=VERSION,
            instructions="Conformance fixture: every tool, resource and prompt the MCP conformance suite names.",
            # ttl 0 + private: results are immediately stale, so caches never hide a list change.
            cache_hints={method: CacheHint(ttl_ms=0, scope="private") for method in cacheable},  # type: ignore[misc]
            get_tool_input_schema=self.input_schema,
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            on_list_prompts=self.list_prompts,
            on_get_prompt=self.get_prompt,
            on_list_resources=self.list_resources,
            on_list_resource_templates=self.list_resource_templates,
            on_read_resource=self.read_resource,
            on_subscribe_resource=self.subscribe,
            on_unsubscribe_resource=self.unsubscribe,
            on_subscriptions_listen=ListenHandler(self.bus),
            on_completion=self.complete,
        )
        # logging/setLevel is 2025-era only (the SDK answers 404/-32601 for it on 2026-07-28).
        server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, self.set_level)
        # Seal requestState (AES-GCM, per-process key) so a tampered echo is rejected.
        server.middleware.append(
            RequestStateBoundary(RequestStateSecurity.ephemeral(audience=NAME), default_audience=NAME)
        )
        server.middleware.append(self.sessions.middleware)
        advertise_list_changed(
            server, NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)
        )
        return server


def build_server() -> Server[Any]:
    return Everything().build()


def main(argv: Sequence[str] | None = None) -> None:
    # retry_interval: the priming event of every POST SSE stream tells clients how soon to resume.
    serve(
        build_server(),
        argv,
        description=__doc__ or NAME,
        event_store=MemoryEventStore(),
        retry_interval=500,
    )


if __name__ == "__main__":
    main()

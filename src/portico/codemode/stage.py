"""`CodeModeStage`: on a Code Mode request the caller sees two tools, `search` and `execute`, and their code runs in
a sandbox; every tool the code calls is an inner exchange through the whole pipeline.

Sits right after `ErrorStage` (before `RouteStage`: `search` and `execute` are no catalog names). For a request
in Code Mode (see `CodeMode.engine_for`):

* `tools/list` answers the two tools (`portico.codemode.tools`), in the flavour of the engine;
* `tools/call search` / `execute` first list the caller's tools with an inner `tools/list` exchange — so exactly
  what policy, pins and every other stage let this caller see on this URL, nothing more — then run the code:
  `search` over the tool summaries (plus ranked `search` and typed `describe` helpers), `execute` with one host
  function per tool. A host call validates its arguments against the tool's input schema, then makes an inner
  `tools/call` exchange (same principal, era and URL; `parent_id` = the outer exchange; its own audit record)
  and hands the code the unwrapped result (`portico.codemode.results`). Upstream credentials, tokens and the
  gateway's state never enter the sandbox: only JSON arguments go out, only JSON results come back;
* a direct `tools/call` of any other name is refused as unknown: in Code Mode the two tools are the surface;
* everything else (prompts, resources, the handshake) passes through unchanged.

Inner exchanges (those with a `parent_id`) are never in Code Mode themselves.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from portico.catalog.catalog import Catalog
from portico.codemode.catalog import ArgumentCheck, CodeCatalog, CodeTool
from portico.codemode.engine import Engine, ErrorKind, Limits, Program, RunError, RunResult, ToolError
from portico.codemode.results import CallRecord, reply, unwrap
from portico.codemode.settings import CodeModeSettings, EngineName
from portico.codemode.tools import codemode_tools
from portico.errors import URL_ELICITATION_REQUIRED, InvalidParamsError, NotFoundError, PorticoError
from portico.metrics import Metrics
from portico.types import JSON, CallNext, Era, Exchange, NullSink, Principal, Reply

log = logging.getLogger("portico.codemode")

MIB = 1024 * 1024
MAX_CODE_CHARS = 100_000
MAX_LIST_PAGES = 100
SEARCH_CALLS = 1000  # search/describe helper calls one search run may make
_BUSY = "you already have {} Code Mode runs in progress; wait for one to finish"
_LANG = {"javascript": "javascript", "js": "javascript", "python": "python", "py": "python"}


class CodeMode:
    """Code Mode's settings and engines for one Portico. Engines start on `start()` when Code Mode is not off,
    or on first use."""

    def __init__(
        self, settings: CodeModeSettings, engines: dict[str, Callable[[], Engine]], metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self._factories = engines
        self._engines: dict[str, Engine] = {}
        self.metrics = metrics
        self.check = ArgumentCheck()
        self._running: dict[tuple[str, str | None], int] = {}  # runs in progress per caller (this process)

    @property
    def runs_in_progress(self) -> int:
        return sum(self._running.values())

    @contextlib.contextmanager
    def slot(self, principal: Principal) -> Iterator[bool]:
        """Hold one of the caller's `runs_per_caller` slots; yields False (holding nothing) when none is free."""
        key = (principal.subject, principal.ip if principal.authenticated_by in ("none", "public") else None)
        if self._running.get(key, 0) >= self.settings.runs_per_caller:
            yield False
            return
        self._running[key] = self._running.get(key, 0) + 1
        try:
            yield True
        finally:
            left = self._running[key] - 1
            if left:
                self._running[key] = left
            else:
                del self._running[key]

    def engine_for(self, exchange: Exchange) -> EngineName | None:
        """The engine this request's Code Mode runs on, or None when the request is not in Code Mode."""
        if exchange.parent_id is not None:
            return None
        mode = self.settings.mode
        asked = exchange.query.get("codemode")
        if (
            mode == "off"
            or (mode == "opt_in" and asked != "search_and_execute")
            or (mode == "default_on" and asked == "off")
        ):
            return None
        lang = _LANG.get(exchange.query.get("lang", "")) if self.settings.allow_engine_choice else None
        return "python" if (lang or self.settings.engine) == "python" else "javascript"

    def engine(self, name: EngineName) -> Engine:
        engine = self._engines.get(name)
        if engine is None:
            engine = self._engines[name] = self._factories[name]()
        return engine

    async def start(self) -> None:
        if self.settings.mode != "off":
            await self.engine(self.settings.engine).start()

    async def aclose(self) -> None:
        for engine in self._engines.values():
            await engine.aclose()
        self._engines.clear()


class CodeModeStage:
    def __init__(
        self,
        codemode: CodeMode,
        catalog: Catalog,
        chain: Callable[[], CallNext],
        server_info: Callable[[str | None], JSON],
    ) -> None:
        """`chain()` is the whole pipeline (inner exchanges start from its top); `server_info(scope)` the
        serverInfo a listing's `_meta` names in the modern era."""
        self._codemode = codemode
        self._catalog = catalog
        self._chain = chain
        self._server_info = server_info

    async def __call__(self, exchange: Exchange, call_next: CallNext) -> Reply:
        engine = self._codemode.engine_for(exchange)
        if engine is None:
            return await call_next(exchange)
        names = self._codemode.settings.tool_names
        if exchange.method == "tools/list":
            return Reply.ok(self._listing(exchange, engine))
        if exchange.method != "tools/call":
            return await call_next(exchange)
        name = exchange.params.get("name")
        if name not in (names.search, names.execute):
            raise NotFoundError("Unknown tool: in Code Mode only the search and execute tools exist")
        arguments = exchange.params.get("arguments")
        code = arguments.get("code") if isinstance(arguments, dict) else None
        if not isinstance(code, str) or not code.strip():
            raise InvalidParamsError("Invalid params: `code` must be a non-empty string")
        if len(code) > MAX_CODE_CHARS:
            raise InvalidParamsError(f"Invalid params: `code` is longer than {MAX_CODE_CHARS} characters")
        exchange.target = str(name)
        with self._codemode.slot(exchange.principal) as free:
            if not free:
                busy = RunResult(error=RunError(ErrorKind.LIMIT, _BUSY.format(self._codemode.settings.runs_per_caller)))
                return Reply.ok(reply(busy, [], self._codemode.settings.limits.max_result_chars))
            tools = await self._visible_tools(exchange, engine)
            run = _Run(self, exchange, engine, tools)
            if name == names.search:
                result = await run.search(code)
            else:
                result = await run.execute(code)
        return Reply.ok(result)

    def _listing(self, exchange: Exchange, engine: EngineName) -> JSON:
        settings = self._codemode.settings
        result: JSON = {"tools": codemode_tools(engine, settings.tool_names, settings.limits)}
        if exchange.era is Era.MODERN:
            from portico.upstream.model import META_SERVER_INFO

            result.update(
                ttlMs=0,
                resultType="complete",
                cacheScope="private",
                _meta={META_SERVER_INFO: self._server_info(exchange.scope)},
            )
        return result

    async def _visible_tools(self, exchange: Exchange, engine: EngineName) -> CodeCatalog:
        """The caller's tools on this URL: an inner `tools/list` through the pipeline, every page."""
        definitions: list[JSON] = []
        cursor: str | None = None
        for page in range(MAX_LIST_PAGES):
            params: JSON = {"cursor": cursor} if cursor else {}
            listed = await self._chain()(inner(exchange, "tools/list", params, f"list{page}"))
            if listed.error is not None or listed.result is None:
                raise PorticoError("Code Mode could not list your tools", detail=str(listed.error))
            tools = listed.result.get("tools")
            definitions += [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
            cursor = listed.result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
        pairs = []
        for definition in definitions:
            entry = self._catalog.resolve("tools", exchange.scope, str(definition.get("name")))
            pairs.append((definition, entry.server_id if entry is not None else exchange.scope))
        return CodeCatalog(pairs, engine)


def inner(outer: Exchange, method: str, params: JSON, suffix: str) -> Exchange:
    """An exchange made on the caller's behalf by Code Mode: same principal, era and URL; its own id and record."""
    return Exchange(
        method=method,
        params=params,
        request_id=f"{outer.id}.{suffix}",
        principal=outer.principal,
        era=outer.era,
        protocol_version=outer.protocol_version,
        scope=outer.scope,
        client_capabilities=outer.client_capabilities,
        client_info=outer.client_info,
        parent_id=outer.id,
        sink=NullSink(),
    )


class _Run:
    """One search or execute run: its host functions, the calls they made, the reply."""

    def __init__(self, stage: CodeModeStage, exchange: Exchange, engine: EngineName, tools: CodeCatalog) -> None:
        self._stage = stage
        self._codemode = stage._codemode
        self._exchange = exchange
        self._engine_name = engine
        self._tools = tools
        self._calls: list[CallRecord] = []
        self._started = 0

    def _limits(self, search: bool) -> Limits:
        limits = self._codemode.settings.limits
        wall = limits.search_wall_s if search else limits.wall_s
        return Limits(
            cpu_s=min(limits.cpu_s, wall),
            wall_s=wall,
            memory_bytes=limits.memory_mb * MIB,
            max_calls=SEARCH_CALLS if search else limits.max_calls,
            max_log_bytes=limits.max_log_bytes,
        )

    async def search(self, code: str) -> JSON:
        tools = self._tools

        async def search(args: dict[str, Any]) -> Any:
            query = args.get("query")
            limit = args.get("limit", 10)
            if not isinstance(query, str) or not isinstance(limit, int) or isinstance(limit, bool):
                raise ToolError("search takes {query: string, limit?: integer}")
            return tools.search(query, limit)

        async def describe(args: dict[str, Any]) -> Any:
            name = args.get("name")
            if not isinstance(name, str):
                raise ToolError("describe takes {name: string}")
            signature = tools.describe(name)
            if signature is None:
                raise ToolError(f"no tool named {name[:80]!r}: find names with search")
            return signature

        program = Program(code, {"tools": tools.summaries()}, {"search": search, "describe": describe})
        return await self._run(program, search=True)

    async def execute(self, code: str) -> JSON:
        functions = {tool.ident: self._host_function(tool) for tool in self._tools.tools}
        declarations = self._tools.declarations() if self._codemode.settings.type_check else None
        program = Program(code, {}, functions, declarations)
        return await self._run(program, search=False)

    def _host_function(self, tool: CodeTool) -> Any:
        async def call(args: dict[str, Any]) -> Any:
            problem = self._codemode.check.problem(tool.input_schema, args)
            if problem is not None:
                raise ToolError(f"invalid arguments for {tool.ident}: {problem}")
            self._started += 1
            exchange = inner(
                self._exchange, "tools/call", {"name": tool.public, "arguments": args}, f"call{self._started}"
            )
            began = time.perf_counter()
            answer = await self._stage._chain()(exchange)
            ms = round((time.perf_counter() - began) * 1000)
            if answer.error is not None or answer.result is None:
                self._calls.append(CallRecord(tool.ident, False, ms))
                raise ToolError(_error_text(answer))
            self._calls.append(CallRecord(tool.ident, answer.result.get("isError") is not True, ms))
            return unwrap(answer.result)

        return call

    async def _run(self, program: Program, *, search: bool) -> JSON:
        engine = self._codemode.engine(self._engine_name)
        run: RunResult = await engine.run(program, self._limits(search))
        outcome = "ok" if run.error is None else run.error.kind.value
        self._exchange.notes.setdefault("audit_extra", {})["codemode"] = {
            "engine": self._engine_name,
            "tool": "search" if search else "execute",
            "calls": len(self._calls),
            "outcome": outcome,
        }
        metrics = self._codemode.metrics
        if metrics is not None:
            metrics.codemode_runs.labels(self._engine_name, "search" if search else "execute", outcome).inc()
        return reply(run, self._calls, self._codemode.settings.limits.max_result_chars)


def _error_text(answer: Reply) -> str:
    """What the code sees of a refused or failed inner call: the public message (a connect link when the user must
    first connect an upstream account, so the model can hand it on)."""
    if answer.error is None:
        return "the tool call failed"
    text = answer.error.message
    data = answer.error.data
    if answer.error.code == URL_ELICITATION_REQUIRED and isinstance(data, dict):
        links = [e.get("url") for e in data.get("elicitations", []) if isinstance(e, dict)]
        if links and isinstance(links[0], str):
            text += f": {links[0]}"
    return text

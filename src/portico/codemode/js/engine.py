"""`JsEngine`: the `Engine` that runs JavaScript in V8 worker processes (see the package docstring for the design).

One run: take a warm worker from the pool, send it the program, then serve its messages until it reports an
outcome: host calls (each awaited here, in the gateway, and answered with JSON or a ToolError message), console
output (kept up to `max_log_bytes`) and the final result. Everything the worker says is validated; anything odd,
any limit and any error ends with the worker killed. The wall deadline covers the whole run, waiting for a worker
and for host functions included; a watchdog reads the worker's CPU time from /proc and kills it when the run's
CPU budget is spent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from portico.codemode.engine import ErrorKind, HostFunction, Limits, Program, RunError, RunResult, ToolError
from portico.codemode.js.pool import WorkerPool, WorkerProcess

logger = logging.getLogger(__name__)

IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
RESERVED_GLOBALS = frozenset({"codemode", "console", "globalThis", "undefined", "NaN", "Infinity", "eval"})
WORKER_KINDS = {
    "syntax": ErrorKind.SYNTAX,
    "runtime": ErrorKind.RUNTIME,
    "tool": ErrorKind.TOOL,
    "memory": ErrorKind.MEMORY,
    "limit": ErrorKind.LIMIT,
}
MAX_MESSAGE_CHARS = 2000
CPU_CHECK_MIN_S = 0.02
OOM_MARKERS = ("out of memory", "allocation failed", "oom")


def strip_fences(code: str) -> tuple[str, int]:
    """The code inside a Markdown fence (```js ... ```), and how many lines the opening fence took away."""
    stripped = code.lstrip()
    if not stripped.startswith("```"):
        return code, 0
    newline = stripped.find("\n")
    if newline < 0:
        return "", 0
    lead = code[: len(code) - len(stripped)]
    body = stripped[newline + 1 :]
    tail = body.rstrip()
    if tail.endswith("```"):
        body = tail[:-3]
    return body, lead.count("\n") + 1


def check_program(program: Program) -> None:
    """Raises ValueError for a program the gateway built wrongly (not for anything in the model's code)."""
    for key in program.data:
        if not isinstance(key, str) or not IDENTIFIER.match(key) or key in RESERVED_GLOBALS:
            raise ValueError(f"data key {key!r} cannot be a JavaScript global")
    for name in program.functions:
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise ValueError(f"function name {name!r} is not a JavaScript identifier")


@dataclass(frozen=True, slots=True)
class _Completed:
    value: Any


@dataclass(slots=True)
class _Run:
    """One run's bookkeeping on the gateway side."""

    limits: Limits
    functions: Mapping[str, HostFunction]
    line_offset: int
    line_count: int
    calls: int = 0
    logs: bytearray = field(default_factory=bytearray)
    logs_truncated: bool = False
    cpu_exceeded: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def add_log(self, text: Any) -> None:
        if self.logs_truncated or not isinstance(text, str):
            return
        data = text.encode("utf-8", "replace")
        room = self.limits.max_log_bytes - len(self.logs)
        if len(data) > room:
            self.logs += data[: max(room, 0)]
            self.logs_truncated = True
        else:
            self.logs += data

    def line(self, reported: Any) -> int | None:
        """A line of the compiled script as a line of the code the model wrote (fence included)."""
        if not isinstance(reported, int) or isinstance(reported, bool) or reported < 1:
            return None
        return min(reported, self.line_count) + self.line_offset


class JsEngine:
    """JavaScript (V8 via mini-racer) in disposable, locked-down worker processes.

    Args:
        warm_workers: workers kept started and idle, ready for a run.
        max_workers: workers at most (idle + running + starting); runs beyond wait for one within their wall time.
        max_runs_per_worker: runs a worker serves (each in a fresh V8 isolate) before it is replaced; 1 gives
            every run a fresh process.
        memory_ceiling_bytes: RLIMIT_DATA hard limit of every worker (Python, V8 and all runs' memory).
        startup_timeout_s: how long a worker may take to start before the engine counts it as failed.
    """

    name = "javascript"

    def __init__(
        self,
        *,
        warm_workers: int = 2,
        max_workers: int = 8,
        max_runs_per_worker: int = 100,
        memory_ceiling_bytes: int = 1024 * 1024 * 1024,
        startup_timeout_s: float = 10.0,
    ) -> None:
        if warm_workers < 0 or max_workers < max(1, warm_workers) or max_runs_per_worker < 1:
            raise ValueError("need 0 <= warm_workers <= max_workers, max_workers >= 1, max_runs_per_worker >= 1")
        self._pool = WorkerPool(
            warm=warm_workers,
            max_workers=max_workers,
            max_runs=max_runs_per_worker,
            data_ceiling_bytes=memory_ceiling_bytes,
            startup_timeout_s=startup_timeout_s,
        )

    @property
    def pool(self) -> WorkerPool:
        return self._pool

    async def start(self) -> None:
        """Start the warm workers. Idempotent.

        Raises:
            EngineUnavailableError: no worker can be started.
        """
        await self._pool.start()

    async def aclose(self) -> None:
        """Kill every worker."""
        await self._pool.aclose()

    async def run(self, program: Program, limits: Limits) -> RunResult:
        """Run `program` within `limits`; every outcome of the code is a `RunResult`.

        Raises:
            EngineUnavailableError: no worker can be started.
            ValueError: the program's data keys or function names cannot be JavaScript names.
        """
        check_program(program)
        code, line_offset = strip_fences(program.code)
        try:
            config = orjson.dumps(
                {
                    "code": code,
                    "functions": list(program.functions),
                    "data": dict(program.data),
                    "max_log_bytes": limits.max_log_bytes,
                    "max_result_bytes": limits.max_result_bytes,
                }
            ).decode()
        except TypeError as exc:
            raise ValueError(f"program data is not JSON: {exc}") from exc
        state = _Run(limits, program.functions, line_offset, code.count("\n") + 1)
        started = time.monotonic()
        worker: WorkerProcess | None = None
        cpu_start = 0.0
        cpu_used = 0.0
        outcome: RunError | _Completed = RunError(ErrorKind.CRASHED, "the run did not finish")
        deadline = asyncio.timeout(limits.wall_s)
        try:
            async with deadline:
                worker = await self._pool.acquire()
                cpu_start = worker.cpu_s()
                outcome = await self._drive(worker, config, state)
        except TimeoutError:
            if not deadline.expired():
                raise
            outcome = RunError(ErrorKind.TIMEOUT, f"the run took longer than {limits.wall_s:g} s")
        finally:
            for task in state.tasks:
                task.cancel()
            if worker is not None:
                cpu_used = max(worker.cpu_s() - cpu_start, 0.0)
                if isinstance(outcome, _Completed) and worker.alive:
                    self._pool.release(worker)
                else:
                    self._pool.discard(worker)
        return RunResult(
            value=outcome.value if isinstance(outcome, _Completed) else None,
            error=None if isinstance(outcome, _Completed) else outcome,
            logs=bytes(state.logs).decode("utf-8", "ignore"),
            logs_truncated=state.logs_truncated,
            calls=state.calls,
            cpu_s=cpu_used,
            wall_s=time.monotonic() - started,
        )

    async def _drive(self, worker: WorkerProcess, config: str, state: _Run) -> RunError | _Completed:
        limits = state.limits
        # A result of max_result_bytes escaped as a JSON string (6 bytes per control character at worst).
        max_frame = 6 * limits.max_result_bytes + 2 * limits.max_log_bytes + 65536
        worker.send({"t": "run", "config": config, "memory_bytes": limits.memory_bytes, "cpu_s": limits.cpu_s})
        watchdog = asyncio.create_task(self._watch_cpu(worker, state))
        try:
            while True:
                try:
                    message = await worker.receive(max_frame)
                except ValueError:
                    return RunError(ErrorKind.LIMIT, "the sandbox produced too much output")
                if message is None:
                    return await self._classify_exit(worker, state)
                kind = message.get("t")
                if kind == "call":
                    if state.calls >= limits.max_calls:
                        return RunError(ErrorKind.LIMIT, f"too many tool calls: at most {limits.max_calls} per run")
                    state.calls += 1
                    task = asyncio.create_task(self._serve_call(worker, state, message))
                    state.tasks.add(task)
                    task.add_done_callback(state.tasks.discard)
                elif kind == "log":
                    state.add_log(message.get("text"))
                elif kind == "done":
                    return self._outcome(message, state)
                else:
                    return RunError(ErrorKind.CRASHED, "the sandbox sent an invalid message")
        finally:
            watchdog.cancel()

    async def _serve_call(self, worker: WorkerProcess, state: _Run, message: dict[str, Any]) -> None:
        """Run one host function here in the gateway and send its JSON result or its ToolError message back."""
        call_id, name = message.get("id"), message.get("name")
        function = state.functions.get(name) if isinstance(name, str) else None
        reply: dict[str, Any]
        try:
            if function is None:
                raise ToolError(f"there is no function codemode.{name}")
            args_text = message.get("args")
            args = orjson.loads(args_text) if isinstance(args_text, str) else None
            if not isinstance(args, dict):
                raise ToolError("the arguments must be one JSON object")
            value = await function(args)
            reply = {"t": "reply", "id": call_id, "ok": True, "value": orjson.dumps(value).decode()}
        except ToolError as exc:
            reply = {"t": "reply", "id": call_id, "ok": False, "message": str(exc) or "the tool failed"}
        except orjson.JSONDecodeError:
            reply = {"t": "reply", "id": call_id, "ok": False, "message": "the arguments are not JSON"}
        except Exception:
            # A host function's own bug: the code sees a failed call (never the traceback); the log gets the rest.
            logger.exception("Code Mode host function %s failed", name)
            reply = {"t": "reply", "id": call_id, "ok": False, "message": "the tool failed (internal error)"}
        worker.send(reply)

    async def _watch_cpu(self, worker: WorkerProcess, state: _Run) -> None:
        """Kill the worker once it has used the run's CPU budget. It cannot burn CPU faster than its two busy
        threads (V8's and its event loop's), so sleeping half the remaining budget never oversleeps it."""
        start = worker.cpu_s()
        while True:
            remaining = state.limits.cpu_s - (worker.cpu_s() - start)
            if remaining <= 0:
                state.cpu_exceeded = True
                worker.kill()
                return
            await asyncio.sleep(max(remaining / 2, CPU_CHECK_MIN_S))

    async def _classify_exit(self, worker: WorkerProcess, state: _Run) -> RunError:
        """The worker went away without an outcome: say why, as well as its exit and stderr allow."""
        if state.cpu_exceeded:
            return RunError(ErrorKind.TIMEOUT, f"the run used more than {state.limits.cpu_s:g} s of CPU time")
        status = await worker.exit_status()
        if status == -signal.SIGXCPU:
            return RunError(ErrorKind.TIMEOUT, f"the run used more than {state.limits.cpu_s:g} s of CPU time")
        stderr = (await worker.stderr_tail()).lower()
        if any(marker in stderr for marker in OOM_MARKERS):
            return RunError(ErrorKind.MEMORY, "the memory limit was exceeded")
        logger.warning("Code Mode JavaScript worker %s died (status %s): %s", worker.pid, status, stderr[-500:])
        return RunError(ErrorKind.CRASHED, "the sandbox process stopped unexpectedly")

    def _outcome(self, message: dict[str, Any], state: _Run) -> RunError | _Completed:
        if message.get("ok") is True:
            text = message.get("value")
            if not isinstance(text, str):
                return RunError(ErrorKind.CRASHED, "the sandbox sent an invalid result")
            if len(text.encode("utf-8", "replace")) > state.limits.max_result_bytes:
                return RunError(ErrorKind.LIMIT, f"the result is larger than {state.limits.max_result_bytes} bytes")
            try:
                return _Completed(orjson.loads(text))
            except orjson.JSONDecodeError:
                pass
            try:  # integers beyond 64 bits, which orjson refuses
                return _Completed(json.loads(text))
            except ValueError:
                return RunError(ErrorKind.CRASHED, "the sandbox sent an invalid result")
        kind = WORKER_KINDS.get(str(message.get("kind")))
        text = message.get("message")
        if kind is None or not isinstance(text, str):
            return RunError(ErrorKind.CRASHED, "the sandbox sent an invalid outcome")
        line = state.line(message.get("line")) if kind is not ErrorKind.MEMORY else None
        return RunError(kind, text[:MAX_MESSAGE_CHARS], line)

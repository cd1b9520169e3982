"""`PythonEngine`: the Code Mode `Engine` on Monty, a Python-subset interpreter run in worker subprocesses.

What the code sees (one fresh Monty session per run, nothing carries over):

* `codemode`: a module whose attributes are the run's host functions, already imported. Call them with
  keywords, `await codemode.notes_search(query="x")`, or with one dict, `await codemode.notes_search({"query":
  "x"})`; `asyncio` is imported too, and `asyncio.gather(...)` runs host calls concurrently. A failed call
  raises `Exception` (its message is the `ToolError`'s), which the code may catch.
* `Program.data`: each key is a module-level name (`tools`, `servers`, ...) bound to a copy of its value.
* The result is the value of the last expression statement, or of a top-level `return`; `print` output is the
  run's logs. Markdown code fences around the code are ignored.
* Nothing else of the host: Monty has no `open` on host files, no sockets, subprocesses, environment,
  `__import__` or introspection (`__class__`, `__subclasses__`); imports are limited to its own standard
  library subset plus `codemode`.

Limits: `memory_bytes` is Monty's heap limit, checked before each allocation; `cpu_s` its execution-time limit
(time suspended on the host is not counted); `wall_s` is the host's deadline over the whole run, checkout
included: on expiry the feed is cancelled, which kills its worker (the pool replaces it). `max_calls` is counted
here, with Monty's suspension limit as a backstop; sleeps are real but capped at `wall_s` in total. Logs keep
the first `max_log_bytes` (`bridge.LogSink`); a result is converted to JSON (`values.to_json`) and measured
against `max_result_bytes`. With `Program.declarations` (the `.pyi` of the `codemode` module, declaring every
function: `stubs.build_declarations`) the code is type-checked before it runs, so a typo'd tool, a missing
required argument or a value outside an enum fails with TYPE before any host call (about 15-20 ms per run).

The pool's workers are children of the gateway process: a crash, an abort or a kill of a worker is a `CRASHED`
(or `MEMORY`/`TIMEOUT`) result, never an exception in the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import keyword
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic_monty import (
    AsyncMonty,
    AsyncMontySession,
    ExternalModule,
    MontyError,
    MontyTypingError,
    OSPolicy,
    ResourceLimits,
)

from portico.codemode.engine import (
    EngineUnavailableError,
    ErrorKind,
    Limits,
    Program,
    RunError,
    RunResult,
)
from portico.codemode.python.bridge import RunBridge
from portico.codemode.python.launcher import Launcher
from portico.codemode.python.outcome import PRELUDE, SCRIPT_NAME, from_monty, from_typing
from portico.codemode.python.values import NotJsonError, to_json

log = logging.getLogger("portico.codemode.python")

RESERVED_DATA_NAMES = frozenset({"codemode", "asyncio"})
SETTLE_S = 0.25  # how long a cancelled run may take to let go of its worker before the result is returned
# After the pool's exit returns, Monty's runtime threads still finish the shutdown and call into Python once
# more; an interpreter finalizing in that window aborts (SIGABRT in a tokio thread). Idling the loop this long
# lets them finish: 1 ms sufficed in 40 of 40 trials, 0 ms aborted 7 of 24.
SHUTDOWN_SETTLE_S = 0.05
PROBE_TIMEOUT_S = 10.0  # a fresh pool's first run must answer within this
_FENCE_OPEN = re.compile(r"\A(\s*)```[\w+-]*[ \t]*(?=\n|\Z)")
_FENCE_CLOSE = re.compile(r"\n[ \t]*```\s*\Z")


class PythonEngine:
    """Runs model-written Python in a pool of Monty worker processes (see the module docstring)."""

    name = "python"

    def __init__(
        self,
        *,
        min_workers: int = 1,
        max_workers: int = 8,
        checkout_timeout_s: float = 5.0,
        max_runs_per_worker: int = 1000,
        binary_path: str | None = None,
    ) -> None:
        """`max_workers` caps concurrent runs (a run holds its worker while it awaits host calls); a run that
        finds no free worker within `checkout_timeout_s` fails with LIMIT. `binary_path` overrides where the
        `monty` worker binary is found (default: the one `pydantic-monty-runtime` installs)."""
        self._binary_path = binary_path
        self._min_workers = min_workers
        self._max_workers = max_workers
        self._checkout_timeout_s = checkout_timeout_s
        self._max_runs_per_worker = max_runs_per_worker
        self._pool: AsyncMonty | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()
        self._stragglers: set[asyncio.Task[Any]] = set()
        self._active: set[RunBridge] = set()  # runs in flight, ended by `aclose`
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        """Spawn the warm workers. Idempotent.

        Raises:
            EngineUnavailableError: the `monty` binary is missing or its workers cannot start.
        """
        await self._ensure_pool()

    async def aclose(self) -> None:
        """End the runs in flight (CRASHED) and stop every worker process (a later `run` starts the pool again)."""
        for bridge in list(self._active):
            bridge.abort(RunError(ErrorKind.CRASHED, "the sandbox was shut down"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), 2 * SETTLE_S)
        async with self._lock:
            stack, self._stack, self._pool = self._stack, None, None
            if stack is not None:
                await stack.aclose()
                await asyncio.sleep(SHUTDOWN_SETTLE_S)

    async def run(self, program: Program, limits: Limits) -> RunResult:
        """Run `program` within `limits`; never raises for what the code does.

        Raises:
            EngineUnavailableError: no sandbox can be started.
            ValueError: a function name is not a public Python identifier, or a data key is not an identifier
                or is `codemode`/`asyncio` (the caller's mistake, not the code's).
        """
        started = time.monotonic()
        _check_names(program)
        pool = await self._ensure_pool()
        bridge = RunBridge(limits, asyncio.get_running_loop())
        self._active.add(bridge)
        self._idle.clear()
        task = asyncio.ensure_future(self._execute(pool, program, limits, bridge))
        aborted = asyncio.ensure_future(bridge.aborted.wait())
        try:
            remaining = max(0.0, limits.wall_s - (time.monotonic() - started))
            await asyncio.wait({task, aborted}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            aborted.cancel()
            if not task.done():
                task.cancel()
                await self._settle(task)
            self._active.discard(bridge)
            if not self._active:
                self._idle.set()

        value: Any = None
        cpu_s = 0.0
        error: RunError | None
        if bridge.abort_error is not None:
            error = bridge.abort_error
        elif task.done() and not task.cancelled():
            value, error, cpu_s = task.result()
        else:
            error = RunError(ErrorKind.TIMEOUT, f"TimeoutError: wall time limit of {limits.wall_s:g} s exceeded")
        if error is None:
            value, error = _result(value, limits)
        return RunResult(
            value=None if error is not None else value,
            error=error,
            logs=bridge.logs.text,
            logs_truncated=bridge.logs.truncated,
            calls=bridge.calls,
            cpu_s=cpu_s,
            wall_s=time.monotonic() - started,
        )

    async def _ensure_pool(self) -> AsyncMonty:
        async with self._lock:
            if self._pool is not None:
                return self._pool
            stack = contextlib.AsyncExitStack()
            try:
                launcher = Launcher(self._binary_path)
                stack.callback(launcher.close)  # last out: the pool may spawn workers until it is closed
                try:
                    pool = await stack.enter_async_context(self._new_pool(launcher.path))
                    await _probe(pool)
                except (OSError, RuntimeError, MontyError, TimeoutError) as exc:
                    if not launcher.scrubbed:
                        raise
                    log.warning(
                        "Monty workers cannot start through the environment-clearing launcher (%s); "
                        "they inherit the gateway's environment",
                        exc,
                    )
                    await stack.aclose()
                    stack = contextlib.AsyncExitStack()
                    pool = await stack.enter_async_context(self._new_pool(launcher.binary))
                    await _probe(pool)
            except (OSError, RuntimeError, MontyError, TimeoutError) as exc:
                await stack.aclose()
                raise EngineUnavailableError(detail=f"the Monty worker pool cannot start: {exc}") from exc
            self._pool, self._stack = pool, stack
            return pool

    def _new_pool(self, binary_path: str) -> AsyncMonty:
        return AsyncMonty(
            binary_path=binary_path,
            min_processes=self._min_workers,
            max_processes=self._max_workers,
            checkout_timeout=self._checkout_timeout_s,
            max_checkouts_per_worker=self._max_runs_per_worker,
        )

    async def _execute(
        self, pool: AsyncMonty, program: Program, limits: Limits, bridge: RunBridge
    ) -> tuple[Any, RunError | None, float]:
        """Check out a fresh session, feed the code; (value, error, worker CPU seconds)."""
        module = ExternalModule(
            {name: bridge.bind(name, function) for name, function in program.functions.items()},
            stubs=program.declarations,
        )
        checking = program.declarations is not None
        checkout = pool.checkout(
            script_name=SCRIPT_NAME,
            limits=_resource_limits(limits),
            type_check=checking,
            type_check_stubs=_data_stubs(program.data) if checking else None,
            type_check_format="json",
            os_policy=_os_policy(limits),
            external_modules={"codemode": module},
        )
        try:
            async with checkout as session:
                clock = _WorkerClock(session.worker_pid)
                try:
                    value, error = await self._feed(session, program, bridge)
                except MontyError as exc:
                    value, error = None, from_monty(exc, tool_messages=bridge.tool_messages, limits=limits)
                return value, error, clock.elapsed()
        except TimeoutError:  # no worker became free within checkout_timeout_s
            return None, RunError(ErrorKind.LIMIT, "LimitExceeded: every sandbox is busy, try again"), 0.0
        except MontyError as exc:  # the worker died while being handed over
            return None, from_monty(exc, tool_messages=(), limits=limits), 0.0
        except RuntimeError as exc:  # Monty's own state errors, e.g. "the pool is not active" after `aclose`
            log.warning("a Code Mode run lost its sandbox: %s", exc)
            return None, RunError(ErrorKind.CRASHED, "the sandbox is unavailable"), 0.0

    async def _feed(
        self, session: AsyncMontySession, program: Program, bridge: RunBridge
    ) -> tuple[Any, RunError | None]:
        code = PRELUDE + _strip_fences(program.code)
        inputs = dict(program.data)
        try:
            return await session.feed_run(code, inputs=inputs, print_callback=bridge.logs), None
        except MontyTypingError as exc:
            rejected = from_typing(exc)
            if rejected is not None:
                return None, rejected
        # only a top-level `return` was flagged: Monty runs it, so run the code unchecked
        return await session.feed_run(code, inputs=inputs, print_callback=bridge.logs, skip_type_check=True), None

    async def _settle(self, task: asyncio.Task[Any]) -> None:
        """Give a cancelled run a moment to release its worker; never wait on it longer than `SETTLE_S`."""
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task}, timeout=SETTLE_S)
        if not task.done():
            log.warning("a cancelled Code Mode run is still releasing its worker")
            self._stragglers.add(task)
            task.add_done_callback(self._stragglers.discard)
        elif not task.cancelled() and task.exception() is not None:
            log.error("a cancelled Code Mode run failed", exc_info=task.exception())


async def _probe(pool: AsyncMonty) -> None:
    """Run `1` once: the pool's start does not wait for a worker to answer."""
    async with pool.checkout() as session:
        await asyncio.wait_for(session.feed_run("1"), PROBE_TIMEOUT_S)


def _check_names(program: Program) -> None:
    for name in program.functions:
        if not (name.isidentifier() and name.isascii()) or keyword.iskeyword(name) or name.startswith("_"):
            raise ValueError(f"host function name {name!r} is not a public Python identifier")
    for name in program.data:
        if not name.isidentifier() or keyword.iskeyword(name) or name in RESERVED_DATA_NAMES:
            raise ValueError(f"data name {name!r} cannot be a module-level name of the code")


def _resource_limits(limits: Limits) -> ResourceLimits:
    return {
        "max_memory": limits.memory_bytes,
        "max_feed_duration_secs": limits.cpu_s,
        # every host call, future resolution, sleep and import suspends; our own counter is the real limit
        "max_suspensions": max(1000, 4 * limits.max_calls + 100),
        "max_total_sleep_secs": limits.wall_s,
    }


def _os_policy(limits: Limits) -> OSPolicy:
    return {"sleep": "system", "sleep_system_max": limits.wall_s, "process_time": "zero"}


def _data_stubs(data: Mapping[str, Any]) -> str:
    return "from typing import Any\n" + "".join(f"{name}: Any\n" for name in data)


def _strip_fences(code: str) -> str:
    """Blank a Markdown fence around the code (lines keep their numbers)."""
    opened = _FENCE_OPEN.match(code)
    if opened is None:
        return code
    code = opened.group(1) + code[opened.end() :]
    return _FENCE_CLOSE.sub("\n", code)


def _result(value: Any, limits: Limits) -> tuple[Any, RunError | None]:
    try:
        converted = to_json(value)
    except NotJsonError as exc:
        return None, RunError(ErrorKind.RUNTIME, f"TypeError: the result is not JSON: {exc}")
    size = len(orjson.dumps(converted))
    if size > limits.max_result_bytes:
        return None, RunError(
            ErrorKind.LIMIT, f"LimitExceeded: the result is {size} bytes, over the limit of {limits.max_result_bytes}"
        )
    return converted, None


class _WorkerClock:
    """CPU seconds a worker process spent since construction, from /proc (0.0 where unavailable)."""

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._start = _cpu_seconds(pid)

    def elapsed(self) -> float:
        end = _cpu_seconds(self._pid)
        if self._start is None or end is None:
            return 0.0
        return max(0.0, end - self._start)


def _cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None

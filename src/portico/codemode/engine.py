"""The one interface of Code Mode's sandbox engines.

An engine runs untrusted code written by a model, with:

* `data`: read-only JSON values the code can read (for `search`: the caller's tool list),
* `functions`: host functions the code calls as async functions on the `codemode` namespace
  (`await codemode.notes__search_notes({query: "x"})` in JavaScript, `await codemode.notes__search_notes(query="x")`
  in Python). A host function takes one JSON object of arguments and returns a JSON value, or raises `ToolError`,
  which the code sees as an ordinary exception it may catch. Host functions run in the gateway process; nothing
  else of the gateway (credentials, environment, files, network) is reachable from the code,
* `limits`: CPU time, wall time, memory, number of host calls, captured log size.

and returns a `RunResult` that never raises for anything the code did: a syntax error, a thrown exception, a
timeout, a memory bomb, too many calls and a crashed sandbox process are all typed `RunError`s. `run` raises only
for a broken engine (it cannot start a sandbox at all): `EngineUnavailableError`.

Pure interface: no imports of the gateway beyond `portico.errors` and `portico.types`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from portico.errors import PorticoError

HostFunction = Callable[[dict[str, Any]], Awaitable[Any]]


class ErrorKind(StrEnum):
    """What ended a run that did not complete normally."""

    SYNTAX = "syntax"  # the code does not parse
    TYPE = "type"  # a pre-run type check rejected it (Python engine: calls checked against stubs)
    RUNTIME = "runtime"  # the code raised/threw (including an uncaught ToolError from a host function)
    TOOL = "tool"  # a host function's ToolError was not caught (subset of runtime, kept apart for the model)
    TIMEOUT = "timeout"  # CPU or wall-time limit
    MEMORY = "memory"  # memory limit
    LIMIT = "limit"  # too many host calls, or log/output limits
    CRASHED = "crashed"  # the sandbox process died for another reason


@dataclass(frozen=True, slots=True)
class RunError:
    kind: ErrorKind
    message: str  # for the model: concise, no host paths or internals
    line: int | None = None  # 1-based line in the code as the model wrote it, when known


@dataclass(frozen=True, slots=True)
class Limits:
    cpu_s: float = 10.0  # CPU time the code may use
    wall_s: float = 60.0  # wall time of the whole run, host-function waits included
    memory_bytes: int = 64 * 1024 * 1024  # heap the code may use
    max_calls: int = 50  # host-function calls per run (every call counts, also failed ones)
    max_log_bytes: int = 64 * 1024  # console.log / print output kept (the rest dropped, `logs_truncated`)
    max_result_bytes: int = 4 * 1024 * 1024  # the serialized return value (beyond: LIMIT error)


@dataclass(frozen=True, slots=True)
class RunResult:
    value: Any = None  # the code's return value as JSON (dicts, lists, str, numbers, bool, None)
    error: RunError | None = None
    logs: str = ""
    logs_truncated: bool = False
    calls: int = 0  # host-function calls started
    cpu_s: float = 0.0  # measured, when the engine can (0.0 otherwise)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class ToolError(Exception):
    """Raised by a host function: the code sees an exception/Error with this message (and may catch it)."""


class EngineUnavailableError(PorticoError):
    """The engine cannot run code at all (its runtime is missing, workers cannot start)."""

    default_public = "Code Mode is unavailable"


@dataclass(frozen=True, slots=True)
class Program:
    """One run's inputs. `declarations` are the engine-language types of `functions` (TypeScript declarations
    or Python stubs) when the engine uses them (Monty type-checks calls against stubs before running)."""

    code: str
    data: Mapping[str, Any] = field(default_factory=dict)
    functions: Mapping[str, HostFunction] = field(default_factory=dict)
    declarations: str | None = None


class Engine(Protocol):
    name: str  # "javascript" | "python"

    async def start(self) -> None:
        """Prepare warm sandboxes (worker processes). Idempotent."""

    async def run(self, program: Program, limits: Limits) -> RunResult:
        """Run `program` within `limits`. Never raises for what the code does (see the module docstring).

        Raises:
            EngineUnavailableError: no sandbox can be started.
        """
        ...

    async def aclose(self) -> None:
        """Stop every sandbox process."""

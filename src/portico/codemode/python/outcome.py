"""Monty's exceptions → the engine interface's `RunError`: the one place foreign errors are mapped.

    MontyError
    ├── MontySyntaxError                        → SYNTAX
    ├── MontyTypingError (json diagnostics)     → TYPE, or SYNTAX when the checker found a syntax error,
    │                                             or nothing when only a top-level `return` was flagged
    ├── MontyRuntimeError, by the inner exception:
    │   ├── TimeoutError "time/sleep limit exceeded"  → TIMEOUT
    │   ├── MemoryError "memory limit exceeded"       → MEMORY
    │   ├── RuntimeError "suspension limit … exceeded" → LIMIT
    │   ├── Exception carrying a host ToolError's message → TOOL
    │   └── anything else                             → RUNTIME
    ├── MontyCrashedError                       → TIMEOUT (watchdog), MEMORY (killed over its limit), CRASHED
    └── anything else (conversion, transport)   → CRASHED

Lines are the model's own: the engine prepends `PRELUDE` (one line), which is subtracted here. Messages are
`Type: message` as Python prints them, and never carry host paths or the worker's internals.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from pydantic_monty import (
    MontyCrashedError,
    MontyError,
    MontyRuntimeError,
    MontySyntaxError,
    MontyTypingError,
)

from portico.codemode.engine import ErrorKind, Limits, RunError

PRELUDE = "import codemode, asyncio\n"
PRELUDE_LINES = PRELUDE.count("\n")
SCRIPT_NAME = "main.py"
MAX_DIAGNOSTICS = 8  # a type-check message lists at most this many

_TOP_LEVEL_RETURN = "`return` statement outside of a function"  # Monty runs it; the checker objects


def from_monty(exc: MontyError, *, tool_messages: Collection[str], limits: Limits) -> RunError:
    """The `RunError` for an exception a feed raised (`MontyTypingError` goes through `from_typing`)."""
    if isinstance(exc, MontySyntaxError):
        frames = exc.traceback()
        line = _model_line(frames[0].line) if frames else None
        return RunError(ErrorKind.SYNTAX, exc.display("type-msg"), line)
    if isinstance(exc, MontyRuntimeError):
        return _from_runtime(exc, tool_messages, limits)
    if isinstance(exc, MontyCrashedError):
        if exc.timed_out:
            return RunError(ErrorKind.TIMEOUT, f"TimeoutError: CPU time limit of {limits.cpu_s:g} s exceeded")
        if "memory" in str(exc).lower():
            return RunError(ErrorKind.MEMORY, _memory_message(limits))
        return RunError(ErrorKind.CRASHED, "the sandbox process crashed")
    return RunError(ErrorKind.CRASHED, "the sandbox failed")


def from_typing(exc: MontyTypingError) -> RunError | None:
    """The `RunError` for a type-check rejection rendered as `json`; None when every diagnostic is one the
    engine tolerates (a top-level `return`, which Monty runs), so the code should run unchecked."""
    diagnostics = [d for d in _diagnostics(exc) if str(d.get("filename", "")).endswith(SCRIPT_NAME)]
    relevant = [d for d in diagnostics if d.get("message") != _TOP_LEVEL_RETURN]
    if not relevant:
        return None
    syntax = [d for d in relevant if d.get("code") == "invalid-syntax"]
    if syntax:
        first = syntax[0]
        return RunError(ErrorKind.SYNTAX, f"SyntaxError: {first.get('message', '')}", _row(first))
    lines = [
        f"line {_row(d) or '?'}: {d.get('severity', 'error')}[{d.get('code', 'type')}] {d.get('message', '')}"
        for d in relevant
    ]
    if len(lines) > MAX_DIAGNOSTICS:
        lines = [*lines[:MAX_DIAGNOSTICS], f"({len(lines) - MAX_DIAGNOSTICS} more)"]
    return RunError(ErrorKind.TYPE, "Type check failed:\n" + "\n".join(lines), _row(relevant[0]))


def _from_runtime(exc: MontyRuntimeError, tool_messages: Collection[str], limits: Limits) -> RunError:
    inner = exc.exception()
    message = exc.display("msg")
    line = _runtime_line(exc)
    if isinstance(inner, TimeoutError) and "time limit exceeded:" in message:
        return RunError(ErrorKind.TIMEOUT, f"TimeoutError: CPU time limit of {limits.cpu_s:g} s exceeded", line)
    if isinstance(inner, TimeoutError) and "sleep limit exceeded:" in message:
        return RunError(ErrorKind.TIMEOUT, f"TimeoutError: more than {limits.wall_s:g} s of sleep", line)
    if isinstance(inner, MemoryError) and "memory limit exceeded:" in message:
        return RunError(ErrorKind.MEMORY, _memory_message(limits), line)
    if isinstance(inner, RuntimeError) and message.startswith("suspension limit"):
        return RunError(ErrorKind.LIMIT, "LimitExceeded: too many host calls, sleeps and awaits", line)
    if type(inner) is Exception and message in tool_messages:
        return RunError(ErrorKind.TOOL, f"ToolError: {message}", line)
    return RunError(ErrorKind.RUNTIME, exc.display("type-msg"), line)


def _memory_message(limits: Limits) -> str:
    return f"MemoryError: memory limit of {limits.memory_bytes / 2**20:g} MiB exceeded"


def _runtime_line(exc: MontyRuntimeError) -> int | None:
    for frame in reversed(exc.traceback()):
        if frame.filename.startswith("<python-input"):
            return _model_line(frame.line)
    return None


def _model_line(line: int) -> int | None:
    line -= PRELUDE_LINES
    return line if line >= 1 else None


def _row(diagnostic: dict[str, Any]) -> int | None:
    location = diagnostic.get("location")
    row = location.get("row") if isinstance(location, dict) else None
    return _model_line(row) if isinstance(row, int) else None


def _diagnostics(exc: MontyTypingError) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(exc.display())
    except ValueError:
        return [{"filename": SCRIPT_NAME, "code": "type", "message": exc.display().strip()}]
    return [d for d in parsed if isinstance(d, dict)] if isinstance(parsed, list) else []

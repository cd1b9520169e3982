"""One run's host side: the `codemode` functions the sandbox calls, the print sink, and the abort signal.

`RunBridge.bind` wraps each `HostFunction` so that the sandbox can call it the Python way
(`await codemode.x(query="a")`) or the JavaScript way (`await codemode.x({"query": "a"})`), every call is
counted against `Limits.max_calls` (the call over the limit ends the run with LIMIT before it reaches the host
function), arguments arrive as plain JSON, and a `ToolError` reaches the code as an `Exception` with the same
message, which it may catch. Any other exception of a host function is a gateway bug: it is logged here and the
code sees only "tool call failed".

`LogSink` keeps the first `max_log_bytes` of `print` output (Monty calls it from a pool thread) and ends the run
with LIMIT once the code has printed `LOG_FLOOD_FACTOR` times more than that, so a print loop cannot make the
gateway process gigabytes of output it drops anyway.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from portico.codemode.engine import ErrorKind, HostFunction, Limits, RunError, ToolError
from portico.codemode.python.values import NotJsonError, to_json

log = logging.getLogger("portico.codemode.python")

LOG_FLOOD_FACTOR = 16  # printing this many times `max_log_bytes` ends the run
LOG_FLOOD_MIN_BYTES = 1024 * 1024  # ... but never below this
TOOL_FAILED = "tool call failed"


class RunBridge:
    """The host state of one run. Created, used and dropped within `PythonEngine.run`."""

    def __init__(self, limits: Limits, loop: asyncio.AbstractEventLoop) -> None:
        self.limits = limits
        self.calls = 0
        self.tool_messages: set[str] = set()  # messages handed to the code for failed host calls
        self.abort_error: RunError | None = None
        self.aborted = asyncio.Event()
        self.logs = LogSink(limits.max_log_bytes, self._flooded, loop)

    def abort(self, error: RunError) -> None:
        """End the run with `error` (the first abort wins). Event-loop thread only."""
        if self.abort_error is None:
            self.abort_error = error
            self.aborted.set()

    def bind(self, name: str, function: HostFunction) -> Callable[..., Awaitable[Any]]:
        """The coroutine function the sandbox sees as `codemode.<name>`."""

        async def call(*args: Any, **kwargs: Any) -> Any:
            arguments = _arguments(name, args, kwargs)
            if self.calls >= self.limits.max_calls:
                self.abort(RunError(ErrorKind.LIMIT, f"LimitExceeded: more than {self.limits.max_calls} tool calls"))
                raise RuntimeError("tool call limit reached")
            self.calls += 1
            try:
                return await function(arguments)
            except ToolError as exc:
                message = str(exc) or TOOL_FAILED
                self.tool_messages.add(message)
                raise Exception(message) from None  # what the code catches: `except Exception as e`
            except Exception:  # a broken host function must not leak its internals into the sandbox
                log.exception("codemode host function %s failed", name)
                self.tool_messages.add(TOOL_FAILED)
                raise Exception(TOOL_FAILED) from None

        call.__name__ = name
        return call

    def _flooded(self) -> None:
        self.abort(RunError(ErrorKind.LIMIT, "LimitExceeded: too much print output"))


def _arguments(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments, or one dict (merged with keywords, which win), as a JSON object."""
    if len(args) > 1 or (args and not isinstance(args[0], dict)):
        raise TypeError(f"codemode.{name}() takes keyword arguments or one dict of arguments")
    merged = {**(args[0] if args else {}), **kwargs}
    try:
        converted: dict[str, Any] = to_json(merged)  # a dict stays a dict
    except NotJsonError as exc:
        raise TypeError(f"codemode.{name}(): an argument is not JSON: {exc}") from None
    return converted


class LogSink:
    """A `print_callback` keeping the first `max_bytes` of output (UTF-8), thread-safe."""

    def __init__(self, max_bytes: int, on_flood: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
        self.max_bytes = max_bytes
        self.flood_bytes = max(LOG_FLOOD_FACTOR * max_bytes, LOG_FLOOD_MIN_BYTES)
        self.truncated = False
        self._parts: list[str] = []
        self._kept = 0
        self._seen = 0
        self._flooded = False
        self._on_flood = on_flood
        self._loop = loop
        self._lock = threading.Lock()

    def __call__(self, stream: Literal["stdout", "stderr"], text: str) -> None:
        with self._lock:
            self._seen += len(text)  # characters: a cheap lower bound of the bytes, enough for flood detection
            room = self.max_bytes - self._kept
            if room > 0:
                data = text.encode("utf-8", "replace")
                if len(data) > room:
                    self.truncated = True
                    data = data[:room]
                kept = data.decode("utf-8", "ignore")
                self._parts.append(kept)
                self._kept += len(data)
            elif text:
                self.truncated = True
            if self._seen > self.flood_bytes and not self._flooded:
                self._flooded = True
                self._loop.call_soon_threadsafe(self._on_flood)

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)

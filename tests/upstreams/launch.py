"""Start fixture servers as real subprocesses, for tests.

Async (anyio)::

    async with launched("echo") as url:                 # http://127.0.0.1:PORT/mcp
        async with Client(url, mode="legacy") as client: ...
    async with launched("echo", "sse") as url: ...       # http://127.0.0.1:PORT/sse
    async with launched("echo", "stdio") as argv: ...    # argv for a stdio client to spawn

Sync (pytest fixtures, threads)::

    with launch_sync("everything") as url: ...

`running()` / `running_sync()` yield a `RunningFixture` (url and the process) for tests that need
the exit code. HTTP/SSE fixtures run in their own process group with cwd = repo root; the wait for
the ``LISTENING`` line is bounded (30 s); on exit the whole group gets SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, overload

import anyio
import anyio.abc
from mcp import StdioServerParameters

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
LISTENING = "LISTENING "

NetworkTransport = Literal["http", "sse"]
Transport = Literal["http", "sse", "stdio"]


class FixtureStartError(RuntimeError):
    """The fixture exited, or stayed silent, before printing its LISTENING line."""


@dataclass
class RunningFixture:
    url: str
    process: anyio.abc.Process | subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


def module_argv(module: str, transport: Transport, args: Sequence[str] = ()) -> list[str]:
    """``python -m tests.upstreams.<module> --transport <t> --port 0 ...`` (run with cwd = repo root)."""
    port = ["--port", "0"] if transport != "stdio" else []
    return [sys.executable, "-m", f"tests.upstreams.{module}", "--transport", transport, *port, *args]


def stdio_argv(module: str, args: Sequence[str] = ()) -> list[str]:
    """argv that starts the fixture over stdio from ANY working directory (repo root put on sys.path)."""
    bootstrap = (
        f"import runpy, sys; sys.path.insert(0, {str(REPO_ROOT)!r}); "
        f"runpy.run_module('tests.upstreams.{module}', run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", bootstrap, "--transport", "stdio", *args]


def stdio_parameters(module: str, args: Sequence[str] = (), env: dict[str, str] | None = None) -> StdioServerParameters:
    """`StdioServerParameters` for `mcp.Client` / `stdio_client`."""
    argv = module_argv(module, "stdio", args)
    return StdioServerParameters(command=argv[0], args=argv[1:], cwd=str(REPO_ROOT), env=env)


def _stderr_tail(stderr: IO[bytes]) -> str:
    stderr.seek(0)
    return stderr.read().decode(errors="replace")[-4000:]


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# --------------------------------------------------------------------------------------------
# async


@asynccontextmanager
async def running(
    module: str, transport: NetworkTransport = "http", *, args: Sequence[str] = (), ready_timeout: float = READY_TIMEOUT
) -> AsyncIterator[RunningFixture]:
    """Start ``tests.upstreams.<module>`` over HTTP or SSE; yield its URL and process."""
    with tempfile.TemporaryFile() as stderr:
        process = await anyio.open_process(
            module_argv(module, transport, args),
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            url = await _await_listening(process, ready_timeout, stderr)
            yield RunningFixture(url, process)
        finally:
            await _stop(process)


async def _await_listening(process: anyio.abc.Process, limit: float, stderr: IO[bytes]) -> str:
    assert process.stdout is not None
    buffer = b""
    try:
        with anyio.fail_after(limit):
            while b"\n" not in buffer:
                try:
                    buffer += await process.stdout.receive()
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    await process.wait()
                    raise FixtureStartError(
                        f"fixture exited with code {process.returncode} before listening:\n{_stderr_tail(stderr)}"
                    ) from None
    except TimeoutError:
        raise FixtureStartError(f"fixture printed no LISTENING line within {limit}s:\n{_stderr_tail(stderr)}") from None
    line = buffer.split(b"\n", 1)[0].decode()
    if not line.startswith(LISTENING):
        raise FixtureStartError(f"unexpected first stdout line {line!r}:\n{_stderr_tail(stderr)}")
    return line.removeprefix(LISTENING).strip()


async def _stop(process: anyio.abc.Process) -> None:
    with anyio.CancelScope(shield=True):
        if process.returncode is None:
            _kill_group(process.pid, signal.SIGTERM)
            with anyio.move_on_after(STOP_TIMEOUT):
                await process.wait()
        _kill_group(process.pid, signal.SIGKILL)  # stragglers in the group, or a process ignoring SIGTERM
        if process.returncode is None:
            with anyio.move_on_after(STOP_TIMEOUT):
                await process.wait()
        await process.aclose()


@overload
def launched(
    module: str, transport: NetworkTransport = "http", *, args: Sequence[str] = ..., ready_timeout: float = ...
) -> AbstractAsyncContextManager[str]: ...
@overload
def launched(
    module: str, transport: Literal["stdio"], *, args: Sequence[str] = ..., ready_timeout: float = ...
) -> AbstractAsyncContextManager[list[str]]: ...
def launched(
    module: str, transport: Transport = "http", *, args: Sequence[str] = (), ready_timeout: float = READY_TIMEOUT
) -> AbstractAsyncContextManager[str] | AbstractAsyncContextManager[list[str]]:
    """``async with launched("echo") as url`` (http/sse) or ``as argv`` (stdio; nothing is started)."""
    if transport == "stdio":
        return _stdio_argv_cm(module, args)
    return _url_cm(module, transport, args, ready_timeout)


@asynccontextmanager
async def _url_cm(
    module: str, transport: NetworkTransport, args: Sequence[str], ready_timeout: float
) -> AsyncIterator[str]:
    async with running(module, transport, args=args, ready_timeout=ready_timeout) as fixture:
        yield fixture.url


@asynccontextmanager
async def _stdio_argv_cm(module: str, args: Sequence[str]) -> AsyncIterator[list[str]]:
    yield stdio_argv(module, args)


# --------------------------------------------------------------------------------------------
# sync


@contextmanager
def running_sync(
    module: str, transport: NetworkTransport = "http", *, args: Sequence[str] = (), ready_timeout: float = READY_TIMEOUT
) -> Iterator[RunningFixture]:
    """Blocking twin of `running` (for pytest fixtures and non-async code)."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            module_argv(module, transport, args),
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            url = _await_listening_sync(process, ready_timeout, stderr)
            yield RunningFixture(url, process)
        finally:
            _stop_sync(process)


def _await_listening_sync(process: subprocess.Popen[bytes], timeout: float, stderr: IO[bytes]) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FixtureStartError(f"fixture printed no LISTENING line within {timeout}s:\n{_stderr_tail(stderr)}")
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                code = process.wait(timeout=STOP_TIMEOUT)
                raise FixtureStartError(f"fixture exited with code {code} before listening:\n{_stderr_tail(stderr)}")
            buffer += chunk
    line = buffer.split(b"\n", 1)[0].decode()
    if not line.startswith(LISTENING):
        raise FixtureStartError(f"unexpected first stdout line {line!r}:\n{_stderr_tail(stderr)}")
    return line.removeprefix(LISTENING).strip()


def _stop_sync(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        _kill_group(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT)
    _kill_group(process.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT)
    if process.stdout is not None:
        process.stdout.close()


@contextmanager
def launch_sync(
    module: str, transport: Transport = "http", *, args: Sequence[str] = (), ready_timeout: float = READY_TIMEOUT
) -> Iterator[str | list[str]]:
    """``with launch_sync("echo") as url`` (http/sse) or ``as argv`` (stdio; nothing is started)."""
    if transport == "stdio":
        yield stdio_argv(module, args)
        return
    with running_sync(module, transport, args=args, ready_timeout=ready_timeout) as fixture:
        yield fixture.url

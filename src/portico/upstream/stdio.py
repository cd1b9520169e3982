"""Local stdio servers that Portico runs and supervises, so they are served centrally like remote ones.

The program is spawned from the admin's config only (exact argv, never a shell, never request data), in its own
process group, with an environment of PATH plus the configured variables. stderr is captured line by line into
the log and a ring buffer shown in health. It is killed (TERM, then KILL) on shutdown and restarted with backoff
when it exits.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from portico.errors import UpstreamUnavailableError
from portico.types import JSON, Era, Exchange
from portico.upstream.base import Upstream
from portico.upstream.model import UpstreamInfo
from portico.upstream.rpc import RpcPeer

log = logging.getLogger("portico.upstream.stdio")


class StdioUpstream(Upstream):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._process: anyio.abc.Process | None = None
        self._peer: RpcPeer | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=50)

    async def _environment(self) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for name in ("HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV"):
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(await self.resolve_values(self.settings.env))
        return env

    async def _connect(self, tg: anyio.abc.TaskGroup) -> UpstreamInfo:
        assert self.settings.command is not None  # validated by ServerSettings
        argv = [*self.settings.command, *self.settings.args]
        log.info("upstream %s: starting %s", self.id, argv)
        self._process = process = await anyio.open_process(
            argv,
            env=await self._environment(),
            cwd=self.settings.cwd,
            start_new_session=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.health.extra["pid"] = process.pid
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        stdin = process.stdin
        lock = anyio.Lock()

        async def send(data: bytes) -> None:
            async with lock:
                await stdin.send(data + b"\n")

        async def on_notification(method: str, params: JSON) -> None:
            await self.notify_listener(method, params)

        self._peer = peer = RpcPeer(self.id, send, on_notification)
        tg.start_soon(self._read_stdout, BufferedByteReceiveStream(process.stdout), peer, tg)
        tg.start_soon(self._read_stderr, BufferedByteReceiveStream(process.stderr))
        result = await peer.handshake()
        return UpstreamInfo(
            server_info=result.get("serverInfo") or {},
            capabilities=result.get("capabilities") or {},
            instructions=result.get("instructions"),
            protocol_version=str(result.get("protocolVersion")),
            eras=frozenset({Era.LEGACY}),
        )

    async def _read_stdout(self, stream: BufferedByteReceiveStream, peer: RpcPeer, tg: anyio.abc.TaskGroup) -> None:
        try:
            while True:
                line = await stream.receive_until(b"\n", self.settings.max_message_bytes)
                if line.strip():
                    await peer.feed(line, tg)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        except anyio.DelimiterNotFound:
            log.error(
                "upstream %s: a message exceeded %d bytes; restarting it", self.id, self.settings.max_message_bytes
            )
        code = await self._exit_code()
        tail = " | ".join(list(self.stderr_tail)[-3:])
        reason = f"process exited (code {code})" + (f": {tail}" if tail else "")
        peer.close(reason)
        self.mark_broken(reason)

    async def _exit_code(self) -> int | None:
        if self._process is None:
            return None
        with anyio.move_on_after(2):
            return await self._process.wait()
        return self._process.returncode

    async def _read_stderr(self, stream: BufferedByteReceiveStream) -> None:
        try:
            while True:
                line = (await stream.receive_until(b"\n", 64 * 1024)).decode("utf-8", errors="replace")
                self.stderr_tail.append(line)
                log.info("upstream %s stderr: %s", self.id, line)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound, anyio.ClosedResourceError):
            return

    async def _send(self, exchange: Exchange, method: str, params: JSON) -> JSON:
        if self._peer is None:
            raise UpstreamUnavailableError(f"Upstream server {self.id!r} is unavailable")
        return await self._peer.call(exchange, method, params)

    async def _disconnect(self) -> None:
        process, self._process = self._process, None
        if self._peer is not None:
            self._peer.close("stopped")
            self._peer = None
        if process is None or process.returncode is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            with anyio.move_on_after(wait_s):
                await process.wait()
                return

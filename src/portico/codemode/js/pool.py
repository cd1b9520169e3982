"""Worker processes for the JavaScript engine: spawning them locked down, keeping a few warm, killing them.

A `WorkerProcess` is the gateway's handle on one `worker.py` child: its socket, its exit status, the tail of its
stderr (read only to tell a V8 out-of-memory abort from another crash) and its CPU time from /proc. `kill` sends
SIGKILL to the worker's whole process group and returns at once; reaping happens in the background.

`WorkerPool` keeps `warm` idle workers ready. `acquire` hands one out (starting one more when none is idle and the
pool is under `max_workers`), `release` takes back a worker whose run completed normally (it serves at most
`max_runs` runs, each in a fresh V8 isolate), `discard` kills one whose run did not, and the pool starts
replacements in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from portico.codemode.engine import EngineUnavailableError
from portico.codemode.js.worker import HEADER, read_frame

logger = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")
STDERR_TAIL_BYTES = 8192
MAX_SPAWN_FAILURES = 3  # consecutive failures with nothing else starting: the engine is unavailable


class WorkerProcess:
    """One started worker. Create with `WorkerProcess.spawn`."""

    def __init__(self, process: asyncio.subprocess.Process, reader: asyncio.StreamReader, writer: Any) -> None:
        self.process = process
        self.pid = process.pid
        self.runs = 0
        self._reader = reader
        self._writer: asyncio.StreamWriter = writer
        self._stderr = bytearray()
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        self._killed = False
        self.unconfined: list[str] = []  # what the worker's kernel could not confine (see worker.confine)

    @classmethod
    async def spawn(cls, workdir: Path, data_ceiling_bytes: int, timeout_s: float) -> WorkerProcess:
        """Start a worker and wait for its first prepared isolate.

        Raises:
            EngineUnavailableError: it did not start or did not become ready within `timeout_s`.
        """
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-B",
                str(WORKER_SCRIPT),
                str(child_end.fileno()),
                str(data_ceiling_bytes),
                str(os.getpid()),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(child_end.fileno(),),
                close_fds=True,
                cwd=workdir,
                env={},
                start_new_session=True,
            )
        except OSError as exc:
            parent_end.close()
            raise EngineUnavailableError(detail=f"cannot start a JavaScript worker: {exc}") from exc
        finally:
            child_end.close()
        try:
            reader, writer = await asyncio.open_connection(sock=parent_end)
        except BaseException:
            _kill_group(process.pid)
            parent_end.close()
            raise
        worker = cls(process, reader, writer)
        try:
            async with asyncio.timeout(timeout_s):
                ready = await worker.receive(1024)
        except (TimeoutError, ValueError):
            ready = None
        except BaseException:  # cancelled (the pool is closing): never leave a worker behind
            worker.kill()
            raise
        if ready is None or ready.get("t") != "ready":
            stderr = await worker.stderr_tail()
            worker.kill()
            raise EngineUnavailableError(detail=f"a JavaScript worker did not start: {stderr[-500:]}")
        unconfined = ready.get("unconfined")
        worker.unconfined = [str(item) for item in unconfined] if isinstance(unconfined, list) else ["unknown"]
        if unconfined and not _warned_unconfined:
            _warned_unconfined.append(True)
            logger.warning("JavaScript workers run without %s (not supported here)", unconfined)
        return worker

    async def _drain_stderr(self) -> None:
        stream = self.process.stderr
        if stream is None:
            return
        while chunk := await stream.read(4096):
            self._stderr += chunk
            del self._stderr[:-STDERR_TAIL_BYTES]

    async def stderr_tail(self, wait_s: float = 0.2) -> str:
        """What the worker wrote to stderr last, after waiting (bounded) for it to close the stream."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await asyncio.shield(self._stderr_task)
        return self._stderr.decode("utf-8", "replace")

    def send(self, message: dict[str, Any]) -> None:
        """Queue one frame (the socket buffer absorbs it; a dead worker is noticed by `receive`)."""
        if self._writer.is_closing():
            return
        body = orjson.dumps(message)
        self._writer.write(HEADER.pack(len(body)) + body)

    async def receive(self, max_bytes: int) -> dict[str, Any] | None:
        """The next message, or None when the worker is gone. Raises ValueError for an oversized or bad frame."""
        try:
            body = await read_frame(self._reader, max_bytes)
        except (ConnectionError, OSError):
            return None
        if body is None:
            return None
        message = orjson.loads(body)
        if not isinstance(message, dict):
            raise ValueError("not a message")
        return message

    def cpu_s(self) -> float:
        """User + system CPU seconds of the worker (all threads) so far; 0.0 once it is gone."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_bytes(self) -> int:
        try:
            with open(f"/proc/{self.pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    @property
    def alive(self) -> bool:
        """Not killed by us, not reaped, and (checked in /proc, since reaping lags) not dead or a zombie."""
        if self._killed or self.process.returncode is not None:
            return False
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            return False
        return state not in (b"Z", b"X")

    def kill(self) -> None:
        """SIGKILL the worker's process group now; reap it in the background."""
        if not self._killed:
            self._killed = True
            _kill_group(self.pid)
            self._writer.close()
        reaper = asyncio.create_task(self._reap())
        _background.add(reaper)
        reaper.add_done_callback(_background.discard)

    async def exit_status(self, wait_s: float = 0.5) -> int | None:
        """The exit status once the worker is gone (negative: killed by that signal), None if still running."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                return await self.process.wait()
        return None

    async def _reap(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self.process.wait()
        self._stderr_task.cancel()


_background: set[asyncio.Task[Any]] = set()
_warned_unconfined: list[bool] = []  # warn once per gateway process


def _kill_group(pid: int) -> None:
    """SIGKILL a worker's process group (the worker leads its own session, so its pid is the group id)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class WorkerPool:
    """Warm workers, handed out one run at a time."""

    def __init__(
        self,
        *,
        warm: int,
        max_workers: int,
        max_runs: int,
        data_ceiling_bytes: int,
        startup_timeout_s: float,
    ) -> None:
        self.warm = warm
        self.max_workers = max_workers
        self.max_runs = max_runs
        self._data_ceiling = data_ceiling_bytes
        self._startup_timeout = startup_timeout_s
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._spawning: set[asyncio.Task[None]] = set()
        self._waiting = 0
        self._failures = 0
        self._last_failure: EngineUnavailableError | None = None
        self._changed = asyncio.Condition()
        self._workdir: Path | None = None
        self._closed = False

    async def start(self) -> None:
        """Start the warm workers and wait for the first one (or its failure).

        Raises:
            EngineUnavailableError: no worker can be started.
        """
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="portico-js-"))
            self._workdir.chmod(0o500)  # empty and read-only: the workers' working directory
        self._closed = False
        async with self._changed:
            self._top_up()
            while self.warm and not self._idle:
                self._raise_if_unavailable()
                await self._changed.wait()

    async def acquire(self) -> WorkerProcess:
        """An idle worker (waits for one; bound the wait from outside).

        Raises:
            EngineUnavailableError: workers keep failing to start, or the pool is closed.
        """
        if self._workdir is None:
            await self.start()
        async with self._changed:
            self._waiting += 1
            try:
                while True:
                    if self._closed:
                        raise EngineUnavailableError(detail="the JavaScript engine is closed")
                    while self._idle:
                        worker = self._idle.pop(0)
                        if worker.alive:
                            self._busy.add(worker)
                            return worker
                        worker.kill()
                    self._raise_if_unavailable()
                    self._top_up()
                    await self._changed.wait()
            finally:
                self._waiting -= 1

    def release(self, worker: WorkerProcess) -> None:
        """Take back a worker whose run completed normally."""
        self._busy.discard(worker)
        worker.runs += 1
        if self._closed or not worker.alive or worker.runs >= self.max_runs or len(self._idle) >= self.warm:
            self._retire(worker)
            return
        self._idle.append(worker)
        self._notify()

    def discard(self, worker: WorkerProcess) -> None:
        """Kill a worker whose run did not complete normally (any limit, error or doubt)."""
        self._busy.discard(worker)
        self._retire(worker)

    def _retire(self, worker: WorkerProcess) -> None:
        worker.kill()
        if not self._closed:
            self._top_up()

    def _raise_if_unavailable(self) -> None:
        if self._failures >= MAX_SPAWN_FAILURES and not self._spawning:
            raise self._last_failure or EngineUnavailableError(detail="JavaScript workers cannot start")

    def _top_up(self) -> None:
        """Start workers until `warm` are idle or starting, plus one per waiting run, within `max_workers`."""
        if self._closed or self._failures >= MAX_SPAWN_FAILURES:
            return
        wanted = max(self.warm, len(self._idle) + self._waiting)
        total = len(self._idle) + len(self._busy) + len(self._spawning)
        while len(self._idle) + len(self._spawning) < wanted and total < self.max_workers:
            task = asyncio.create_task(self._spawn())
            self._spawning.add(task)
            total += 1

    async def _spawn(self) -> None:
        assert self._workdir is not None
        try:
            worker = await WorkerProcess.spawn(self._workdir, self._data_ceiling, self._startup_timeout)
        except EngineUnavailableError as exc:
            logger.warning("JavaScript worker failed to start: %s", exc.detail or exc)
            self._failures += 1
            self._last_failure = exc
            worker = None
        else:
            self._failures = 0
        finally:
            current = asyncio.current_task()
            self._spawning.discard(current)
        if worker is not None:
            if self._closed:
                worker.kill()
            else:
                self._idle.append(worker)
        elif not self._closed and self._failures < MAX_SPAWN_FAILURES:
            self._top_up()
        await self._notify_async()

    def _notify(self) -> None:
        task = asyncio.create_task(self._notify_async())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _notify_async(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def stats(self) -> dict[str, int]:
        return {"idle": len(self._idle), "busy": len(self._busy), "starting": len(self._spawning)}

    def idle_workers(self) -> list[WorkerProcess]:
        return list(self._idle)

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._spawning):
            task.cancel()
        for task in list(self._spawning):
            with contextlib.suppress(asyncio.CancelledError, EngineUnavailableError):
                await task
        for worker in [*self._idle, *self._busy]:
            worker.kill()
        self._idle.clear()
        self._busy.clear()
        await self._notify_async()
        for task in list(_background):
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), 5.0)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

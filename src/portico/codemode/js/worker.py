"""A Code Mode JavaScript worker: one disposable process that runs model code in V8 (mini-racer) for the gateway.

Started by `portico.codemode.js.pool` as ``python -I -B worker.py <fd> <data_ceiling_bytes> <parent_pid>`` with
an empty environment, an empty read-only working directory, stdin/stdout on /dev/null, stderr piped to the
parent (read only to classify a crash), in its own process group, and one inherited file descriptor: a Unix
socket to the parent. This file runs as a script, so it imports only the standard library and `py_mini_racer`;
the parent imports it only for the framing helpers.

Before V8 is even loaded the worker limits itself (no core dumps, no file writes, few descriptors, a ceiling on
writable private memory: RLIMIT_DATA, because V8 reserves a terabyte of address space for its sandbox so
RLIMIT_AS cannot be used) and asks to be killed with its parent. Once V8 is loaded and the first isolate exists
it gives up the file system, networking, exec and other processes for good (`confine`: Landlock and seccomp).
Per run it lowers RLIMIT_DATA and RLIMIT_CPU again to that run's budget. The parent stays the authority: it
kills the whole process group at the wall deadline, when the CPU budget is spent, or on any other limit; what
the worker reports is validated there.

Wire format, both directions: a 4-byte big-endian length, then that many bytes of UTF-8 JSON (one object).

parent → worker
    ``{"t": "run", "config": "<JSON for runtime.js setup>", "memory_bytes": n, "cpu_s": x}``
    ``{"t": "reply", "id": n, "ok": true, "value": "<JSON>"}`` or
    ``{"t": "reply", "id": n, "ok": false, "message": "..."}``
worker → parent
    ``{"t": "ready", "unconfined": [...]}`` (an isolate is prepared; what `confine` could not apply here)
    ``{"t": "call", "id": n, "name": "...", "args": "<JSON>"}``, ``{"t": "log", "text": "..."}``
    ``{"t": "done", "ok": true, "value": "<JSON>"}`` or
    ``{"t": "done", "ok": false, "kind": "syntax|runtime|tool|memory|limit", "message": "...", "line": n|null}``

After a run that did not complete normally the worker exits: a worker is never reused after an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import math
import os
import platform
import re
import resource
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Any

HEADER = struct.Struct(">I")
MAX_INBOUND_FRAME = 256 * 1024 * 1024  # what the worker accepts from the parent (the parent is trusted)
V8_FLAGS = ("--single-threaded", "--jitless")
MEMORY_POLL_S = 0.02
DATA_SLACK_BYTES = 96 * 1024 * 1024  # writable memory a run may add beyond its heap: V8 pages, buffers, Python
MAX_OPEN_FILES = 64
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture
SYS_LANDLOCK_RESTRICT_SELF = 446
# x86_64 numbers: sockets, exec, fork, tracing and other processes' memory, io_uring (which bypasses seccomp),
# bpf, keys, mounts and namespaces, modules, device nodes, handles to files and processes.
SECCOMP_DENIED = (
    *(41, 42, 43, 49, 50, 53, 288),  # socket connect accept bind listen socketpair accept4
    *(59, 322, 57, 58),  # execve execveat fork vfork
    *(101, 310, 311, 312, 440),  # ptrace process_vm_readv/writev kcmp process_madvise
    *(425, 426, 427),  # io_uring_setup/enter/register
    *(321, 323, 298),  # bpf userfaultfd perf_event_open
    *(248, 249, 250),  # add_key request_key keyctl
    *(155, 161, 165, 166, 272, 308),  # pivot_root chroot mount umount2 unshare setns
    *(175, 313, 246, 320),  # init_module finit_module kexec_load kexec_file_load
    *(133, 259, 303, 304, 434, 438),  # mknod mknodat name_to_handle_at open_by_handle_at pidfd_open pidfd_getfd
    *(135, 163, 167, 168, 169, 170, 171, 172, 173, 179),  # personality acct swap reboot names iopl ioperm quota
)
SYNTAX_ERROR = re.compile(r"^[^\n]*?:(\d+): (SyntaxError: [^\n]*)")


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
    return HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader, max_bytes: int) -> bytes | None:
    """One frame's body, or None at end of stream. Raises ValueError for a frame larger than `max_bytes`."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError:
        return None
    (size,) = HEADER.unpack(header)
    if size > max_bytes:
        raise ValueError("frame too large")
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None


# ------------------------------------------------------------------------------------------------ process limits


def limit_process(data_ceiling: int, parent: int) -> None:
    """Applied first thing, before V8 is loaded and long before any model code exists in this process."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (MAX_OPEN_FILES, MAX_OPEN_FILES))
    resource.setrlimit(resource.RLIMIT_DATA, (data_ceiling, data_ceiling))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails with EFBIG instead
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if os.getppid() != parent:  # the gateway died before PDEATHSIG was armed
        os._exit(1)


class _LandlockRuleset(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def confine() -> list[str]:
    """Once V8 is loaded and an isolate exists: give up the file system, TCP, abstract Unix sockets and signals
    to other processes (Landlock, an empty ruleset) and creating sockets, exec, fork, ptrace, io_uring and the
    like (seccomp). Nothing the worker does afterwards needs any of them; a V8 bug exploited by model code finds
    a process that can only talk to the gateway over its socket. Returns what this kernel could not apply."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    missing = []
    abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        missing.append("landlock")
    else:
        fs = (1 << 13) - 1  # ABI 1: execute, read/write files, read dirs, make/remove anything
        fs |= (1 << 13) if abi >= 2 else 0  # refer
        fs |= (1 << 14) if abi >= 3 else 0  # truncate
        fs |= (1 << 15) if abi >= 5 else 0  # ioctl on devices
        ruleset = _LandlockRuleset(
            fs, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0
        )  # TCP; abstract sockets, signals
        size = 8 if abi < 4 else 16 if abi < 6 else 24
        fd = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(ruleset), size, 0)
        if fd < 0 or libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, fd, 0) != 0:
            missing.append("landlock")
        if fd >= 0:
            os.close(fd)
    if platform.machine() != "x86_64":
        missing.append("seccomp")
    else:
        program = _seccomp_program()
        fprog = _SockFprog(len(program), program)
        if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
            missing.append("seccomp")
    return missing


def _seccomp_program() -> ctypes.Array[_SockFilter]:
    """x86_64: refuse (EPERM) the system calls a sandbox escape needs; clone only for threads; clone3 is ENOSYS
    so the C library falls back to clone, whose flags can be checked; the x32 ABI is refused outright."""
    ld, jeq, jset, jge, ret = 0x20, 0x15, 0x45, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ/JSET/JGE|K, BPF_RET|K
    deny, allow, enosys = 0x00050000 | 1, 0x7FFF0000, 0x00050000 | 38
    code: list[tuple[int, int, int, int]] = [
        (ld, 0, 0, 4),
        (jeq, 1, 0, 0xC000003E),  # AUDIT_ARCH_X86_64
        (ret, 0, 0, deny),
        (ld, 0, 0, 0),
        (jge, 0, 1, 0x40000000),  # x32 system calls
        (ret, 0, 0, deny),
        (jeq, 0, 1, 435),  # clone3
        (ret, 0, 0, enosys),
        (jeq, 0, 3, 56),  # clone: threads only
        (ld, 0, 0, 16),  # args[0], low 32 bits: the flags
        (jset, 1, 0, 0x00010000),  # CLONE_THREAD
        (ret, 0, 0, deny),
    ]
    tail = len(SECCOMP_DENIED)
    for i, number in enumerate(SECCOMP_DENIED):
        code.append((jeq, tail - i, 0, number))  # jump to the final deny
    code += [(ret, 0, 0, allow), (ret, 0, 0, deny)]
    code[10] = (jset, len(code) - 2 - 11, 0, 0x00010000)  # a thread: jump to `allow` (offsets count from the next)
    return (_SockFilter * len(code))(*(_SockFilter(c, jt, jf, k) for c, jt, jf, k in code))


_status_fd = -1  # /proc/self/status, opened before `confine` takes the file system away


def writable_bytes() -> int:
    """This process's writable private memory as RLIMIT_DATA counts it (VmData)."""
    global _status_fd
    if _status_fd < 0:
        _status_fd = os.open("/proc/self/status", os.O_RDONLY)
    for line in os.pread(_status_fd, 16384, 0).splitlines():
        if line.startswith(b"VmData:"):
            return int(line.split()[1]) * 1024
    return 0


def limit_run(memory_bytes: int, cpu_s: float) -> None:
    """Tighten the soft limits to this run's budget (the hard limits stay where `limit_process` put them)."""
    _, data_hard = resource.getrlimit(resource.RLIMIT_DATA)
    budget = writable_bytes() + 2 * memory_bytes + DATA_SLACK_BYTES
    resource.setrlimit(resource.RLIMIT_DATA, (min(budget, data_hard), data_hard))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_soft = math.ceil(usage.ru_utime + usage.ru_stime + cpu_s) + 1
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    if cpu_hard != resource.RLIM_INFINITY:
        cpu_soft = min(cpu_soft, cpu_hard)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_soft, cpu_hard))


# ------------------------------------------------------------------------------------------------ the worker


class Isolate:
    """One run's sandbox: a fresh V8 isolate with the runtime evaluated and the three host functions wrapped.

    Opened while the worker is idle, so a run only installs its program and starts it."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._stack = contextlib.AsyncExitStack()
        self._outcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._racer: Any = None
        self._setup: Any = None
        self._host: tuple[Any, Any, Any] = (None, None, None)

    async def open(self) -> Isolate:
        from py_mini_racer import MiniRacer

        self._racer = MiniRacer()
        self._setup = self._racer.eval(self._worker.runtime)
        self._host = (
            await self._stack.enter_async_context(self._racer.wrap_py_function(self._host_call)),
            await self._stack.enter_async_context(self._racer.wrap_py_function(self._host_log)),
            await self._stack.enter_async_context(self._racer.wrap_py_function(self._host_done)),
        )
        return self

    def _settle(self, result: dict[str, Any]) -> None:
        if not self._outcome.done():
            self._outcome.set_result(result)

    async def _host_call(self, name: Any, args: Any) -> str:
        return await self._worker.call(str(name), str(args))

    async def _host_log(self, text: Any) -> None:
        self._worker.send({"t": "log", "text": str(text)})

    async def _host_done(self, payload: Any) -> None:
        text = str(payload)
        if text.startswith("1"):
            self._settle({"t": "done", "ok": True, "value": text[1:]})
        else:
            self._settle({"t": "done", "ok": False, **json.loads(text[1:])})

    async def _watch_memory(self) -> None:
        while not self._outcome.done():
            if self._racer.was_hard_memory_limit_reached():
                self._settle(memory_exceeded())
                return
            await asyncio.sleep(MEMORY_POLL_S)

    async def run(self, message: dict[str, Any]) -> bool:
        """Run one program; True when it completed normally (and the worker may serve another)."""
        from py_mini_racer import JSEvalException

        memory_bytes = int(message["memory_bytes"])
        limit_run(memory_bytes, float(message["cpu_s"]))
        self._racer.set_hard_memory_limit(memory_bytes)
        evaluation: asyncio.Task[Any] | None = None
        try:
            script = self._setup(*self._host, message["config"])
        except JSEvalException:
            self._settle({"t": "done", "ok": False, "kind": "runtime", "message": "the program could not be set up"})
        else:
            evaluation = asyncio.create_task(self._racer.eval_cancelable(str(script)))
            evaluation.add_done_callback(lambda task: settle_evaluation(task, self._settle))
        watcher = asyncio.create_task(self._watch_memory())
        result = await self._outcome
        watcher.cancel()
        if self._racer.was_hard_memory_limit_reached():
            result = memory_exceeded()
        self._worker.send(result)
        await self._worker.drain()
        return bool(result["ok"]) and evaluation is not None and evaluation.done()

    async def close(self) -> None:
        await self._stack.aclose()
        self._racer.close()


class Worker:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, runtime: str) -> None:
        self.runtime = runtime
        self._reader = reader
        self._writer = writer
        self._replies: dict[int, asyncio.Future[str]] = {}
        self._next_call = 0
        self._next: asyncio.Task[Isolate] | None = None

    def send(self, message: dict[str, Any]) -> None:
        self._writer.write(frame(message))

    async def drain(self) -> None:
        await self._writer.drain()

    async def call(self, name: str, args: str) -> str:
        """Relay one host call to the parent; its reply: "1" + JSON value, or "0" + a ToolError message."""
        self._next_call += 1
        call_id = self._next_call
        reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._replies[call_id] = reply
        self.send({"t": "call", "id": call_id, "name": name, "args": args})
        try:
            return await reply
        finally:
            self._replies.pop(call_id, None)

    def _open_next(self) -> None:
        self._next = asyncio.create_task(Isolate(self).open())

    async def serve(self) -> None:
        self._open_next()
        assert self._next is not None
        await self._next
        writable_bytes()  # opens /proc/self/status while it still can
        self.send({"t": "ready", "unconfined": confine()})
        run: asyncio.Task[bool] | None = None
        while True:
            body = await read_frame(self._reader, MAX_INBOUND_FRAME)
            if body is None:
                return
            message = json.loads(body)
            kind = message.get("t")
            if kind == "run":
                # The parent may send the next run as soon as it has this one's outcome, while the isolate is
                # still being closed: runs start strictly one after another.
                run = asyncio.create_task(self._run(message, run))
                run.add_done_callback(self._after_run)
            elif kind == "reply":
                future = self._replies.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result("1" + message["value"] if message["ok"] else "0" + message["message"])

    async def _run(self, message: dict[str, Any], previous: asyncio.Task[bool] | None) -> bool:
        if previous is not None:
            await asyncio.wait([previous])
        assert self._next is not None
        isolate = await self._next
        self._next = None
        clean = await isolate.run(message)
        if clean:
            await isolate.close()
        return clean

    def _after_run(self, task: asyncio.Task[bool]) -> None:
        if task.cancelled() or task.exception() is not None or not task.result():
            os._exit(0)  # never reused after an error; the parent reads what was sent before the exit
        self._open_next()  # after the outcome went out, so the next run's isolate costs its caller nothing


def memory_exceeded() -> dict[str, Any]:
    return {"t": "done", "ok": False, "kind": "memory", "message": "the memory limit was exceeded", "line": None}


def settle_evaluation(task: asyncio.Task[Any], settle: Any) -> None:
    """The compiled script finished its synchronous part: only a parse error or a termination is an outcome."""
    from py_mini_racer import JSEvalException, JSOOMException, JSParseException

    if task.cancelled():
        return
    error = task.exception()
    if error is None:
        return
    if isinstance(error, JSParseException):
        match = SYNTAX_ERROR.match(str(error))
        line = int(match.group(1)) if match else None
        text = match.group(2) if match else "SyntaxError"
        settle({"t": "done", "ok": False, "kind": "syntax", "message": text, "line": line})
    elif isinstance(error, JSOOMException):
        settle(memory_exceeded())
    elif isinstance(error, JSEvalException):
        settle({"t": "done", "ok": False, "kind": "runtime", "message": "the program was terminated", "line": None})
    else:
        settle({"t": "done", "ok": False, "kind": "runtime", "message": "the program failed", "line": None})


async def amain(fd: int) -> None:
    runtime = (Path(__file__).with_name("runtime.js")).read_text(encoding="utf-8")
    from py_mini_racer import init_mini_racer

    init_mini_racer(flags=V8_FLAGS)
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    await Worker(reader, writer, runtime).serve()


def main() -> None:
    fd, data_ceiling, parent = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    limit_process(data_ceiling, parent)
    asyncio.run(amain(fd))
    os._exit(0)


if __name__ == "__main__":
    main()

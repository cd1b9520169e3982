"""Portico overhead benchmark: the same `echo` tool call direct to the upstream and through Portico.

One run starts a fresh `tests.upstreams.echo` (Streamable HTTP) and a fresh `portico serve` (audit on, the
default: SQLite store and spool in a temporary directory), both as subprocesses on loopback, then for each
concurrency level runs warm-up calls against both, followed by timed phases alternating direct / through
Portico (ABAB…) so machine-load noise shows up as a difference between rounds rather than as a bias.

Per phase it reports calls/s, p50/p99 latency, errors, and CPU time per call of Portico, the upstream and this
load generator (utime+stime from /proc/<pid>/stat around the phase; Portico and upstream are also allowed to go
idle after the phase, bounded, so work such as the audit flush that lands just after the last reply is counted),
plus how busy the whole machine was and how much of that was other processes.

The load generator is deliberately lean: pre-built JSON-RPC bodies POSTed with one `httpx2.AsyncClient` per
target and concurrency level (uvloop when available), responses checked with orjson; no pydantic, no SDK.

    .venv/bin/python bench/overhead.py                         # modern era, c=1 and c=16, 2 rounds
    .venv/bin/python bench/overhead.py --era legacy --json     # handshake era; machine-readable output
    .venv/bin/python bench/overhead.py --concurrency 1,4,16 --calls 2000,3000,4000 --rounds 3
    .venv/bin/python bench/overhead.py --auth oauth             # every call with a bearer token (identity on)

Targets (from the performance issue): through-Portico throughput >= 0.6x direct; <= 1.5 ms Portico CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx2
import orjson

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
ACCEPT = "application/json, text/event-stream"
TARGET_RATIO = 0.6
TARGET_GW_CPU_MS = 1.5
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
SETTLE_MAX_S = 3.0  # after a phase: wait at most this long for Portico/upstream CPU to go flat
SETTLE_STEP_S = 0.1
SERVER_ID = "echo"
NOISY_CORES = 0.25  # a phase during which other processes used more than this is flagged


# ------------------------------------------------------------------------------------------------ processes


def proc_cpu_ticks(pid: int | str) -> int:
    """utime + stime of a whole process (all threads), in clock ticks."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat.rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted from 1 before the comm


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


class Child:
    """A subprocess in its own process group; stderr (and stdout unless piped) go to a temp file."""

    def __init__(self, name: str, argv: list[str], *, pipe_stdout: bool = False) -> None:
        self.name = name
        self.argv = argv
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.popen = subprocess.Popen(
            argv,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe_stdout else self.log,
            stderr=self.log,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_ticks(self) -> int:
        return proc_cpu_ticks(self.pid)

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def read_listening(self, timeout: float) -> str:
        """The URL from the fixture's `LISTENING <url>` line (bounded wait)."""
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.popen.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"{self.name} printed no LISTENING line in {timeout}s:\n{self.log_tail()}")
                if not selector.select(remaining):
                    continue
                chunk = os.read(self.popen.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"{self.name} exited before listening:\n{self.log_tail()}")
                buffer += chunk
        line = buffer.split(b"\n", 1)[0].decode()
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"{self.name}: unexpected first line {line!r}")
        return line.removeprefix("LISTENING ").strip()

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.popen.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=STOP_TIMEOUT_S)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self.log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def portico_argv(config: Path, port: int, template: str | None = None) -> list[str]:
    """`portico serve` (the venv's script), or `--portico-cmd` with {python}, {config} and {port} filled in."""
    if template:
        return [part.format(python=sys.executable, config=config, port=port) for part in shlex.split(template)]
    script = Path(sys.executable).parent / "portico"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "portico.cli.main"]
    return [*head, "serve", "--config", str(config), "--port", str(port), "--log-level", "warning"]


def write_config(tmp: Path, upstream_url: str, fsync: bool, auth: str = "none", port: int = 0) -> Path:
    """Same shape as tests/support/portico.py make_settings: SQLite file + audit spool dir under `tmp`."""
    config: dict[str, Any] = {
        "store": {"url": f"sqlite:///{tmp / 'portico.db'}"},
        "audit": {"spool_dir": str(tmp / "spool"), "fsync": fsync},
        "servers": [{"id": SERVER_ID, "url": upstream_url}],
        "policy": {"rules": [{"id": "bench-open", "effect": "permit"}]},  # the policy stage runs, and permits
    }
    if auth == "oauth":  # every call carries a bearer token: the verifier (cached) and the context run per call
        config |= {
            "auth": "oauth",
            "listen": {"port": port},
            "identity": {"tokens": {"key_file": str(tmp / "keys.json"), "max_access_ttl_s": 86_400}},
            "vault": {"key_file": str(tmp / "vault.key")},
        }
    path = tmp / "portico.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def bench_token(config: Path, resource: str) -> str:
    """A user and an access token for it, made with the CLI as an operator would."""
    portico = str(Path(sys.executable).parent / "portico")
    subprocess.run(
        [portico, "user", "add", "bench", "--config", str(config), "--group", "bench"],
        input="bench-password-long-enough\n",
        text=True,
        check=True,
        capture_output=True,
    )
    argv = [portico, "token", "issue", "--config", str(config), "--user", "bench", "--ttl", "86400"]
    issued = subprocess.run(
        [*argv, "--resource", resource],
        text=True,
        check=True,
        capture_output=True,
    )
    return issued.stdout.strip()


# ------------------------------------------------------------------------------------------------ wire


@dataclass
class Target:
    name: str  # "direct" | "portico"
    url: str
    tool: str
    era: str
    session_id: str | None = None
    token: str | None = None

    def headers(self) -> dict[str, str]:
        if self.era == "modern":
            headers = {
                "content-type": "application/json",
                "accept": ACCEPT,
                "mcp-protocol-version": MODERN,
                "mcp-method": "tools/call",
                "mcp-name": self.tool,
            }
        else:
            headers = {"content-type": "application/json", "accept": ACCEPT, "mcp-protocol-version": LEGACY}
        if self.era != "modern" and self.session_id is not None:
            headers["mcp-session-id"] = self.session_id
        if self.token is not None:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def body(self, request_id: int, text: str) -> bytes:
        params: dict[str, Any] = {"name": self.tool, "arguments": {"text": text}}
        if self.era == "modern":
            params["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})


def parse_reply(response: httpx2.Response, request_id: int) -> dict[str, Any] | str:
    """The JSON-RPC message answering `request_id` (JSON or SSE body), or a problem description."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.content[:120]!r}"
    data = response.content
    message: Any = None
    try:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            for line in data.split(b"\n"):
                if line.startswith(b"data:") and line[5:].strip():  # skip priming events (empty data)
                    candidate = orjson.loads(line[5:])
                    if isinstance(candidate, dict) and "method" not in candidate and candidate.get("id") == request_id:
                        message = candidate
                        break
        else:
            message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return f"unparseable body: {data[:120]!r}"
    if not isinstance(message, dict) or message.get("id") != request_id:
        return f"no reply with id {request_id}: {data[:120]!r}"
    return message


def check_result(response: httpx2.Response, request_id: int, text: str) -> str | None:
    message = parse_reply(response, request_id)
    if isinstance(message, str):
        return message
    if "error" in message:
        return f"JSON-RPC error {message['error']}"
    result = message.get("result")
    if not isinstance(result, dict):
        return "no result"
    if result.get("isError"):
        return f"tool error: {str(result)[:120]}"
    content = result.get("content")
    if not (isinstance(content, list) and content and content[0].get("text") == text):
        return f"unexpected content: {str(result)[:120]}"
    return None


async def open_legacy_session(client: httpx2.AsyncClient, target: Target) -> None:
    """initialize + notifications/initialized; the session id is then sent with every call."""
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "portico-bench", "version": "1"},
        },
    }
    response = await client.post(target.url, content=orjson.dumps(body), headers=target.headers())
    reply = parse_reply(response, 0)
    if isinstance(reply, str) or "result" not in reply:
        raise RuntimeError(f"{target.name}: initialize failed: {reply}")
    target.session_id = response.headers.get("mcp-session-id")
    if target.session_id is None:
        raise RuntimeError(f"{target.name}: initialize returned no Mcp-Session-Id")
    notification = orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
    response = await client.post(target.url, content=notification, headers=target.headers())
    if response.status_code not in (200, 202):
        raise RuntimeError(f"{target.name}: notifications/initialized got HTTP {response.status_code}")


# ------------------------------------------------------------------------------------------------ phases


@dataclass
class Snapshot:
    wall: float
    portico: int
    upstream: int
    client: int
    busy: int
    total: int

    @classmethod
    def take(cls, portico: Child, upstream: Child) -> Snapshot:
        busy, total = machine_ticks()
        return cls(time.perf_counter(), portico.cpu_ticks(), upstream.cpu_ticks(), proc_cpu_ticks("self"), busy, total)


@dataclass
class Phase:
    concurrency: int
    round: int
    target: str
    calls: int = 0
    errors: int = 0
    timed_out: bool = False
    wall_s: float = 0.0
    calls_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    portico_cpu_ms_per_call: float = 0.0
    upstream_cpu_ms_per_call: float = 0.0
    client_cpu_ms_per_call: float = 0.0
    settle_s: float = 0.0
    machine_busy_cores: float = 0.0
    bench_procs_cores: float = 0.0
    other_procs_cores: float = 0.0
    error_samples: list[str] = field(default_factory=list)


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index] / 1e6


async def settle(portico: Child, upstream: Child) -> float:
    """Wait (bounded) until Portico and the upstream use no more CPU: trailing work is then counted too."""
    start = time.perf_counter()
    last = (portico.cpu_ticks(), upstream.cpu_ticks())
    for _ in range(int(SETTLE_MAX_S / SETTLE_STEP_S)):
        await asyncio.sleep(SETTLE_STEP_S)
        now = (portico.cpu_ticks(), upstream.cpu_ticks())
        if sum(now) - sum(last) <= 1:  # <= one tick in 100 ms: idle
            break
        last = now
    return time.perf_counter() - start


class Bench:
    def __init__(self, args: argparse.Namespace, portico: Child, upstream: Child) -> None:
        self.args = args
        self.portico = portico
        self.upstream = upstream
        self.next_id = 1

    async def calls(
        self, client: Any, target: Target, concurrency: int, count: int, time_limit: float
    ) -> tuple[list[int], int, list[str], bool]:
        """`count` calls by `concurrency` workers; (latencies ns, errors, error samples, timed out)."""
        text = self.args.text
        first = self.next_id
        self.next_id += count
        bodies = [target.body(first + k, text) for k in range(count)]
        headers = target.headers()
        url = target.url
        latencies: list[int] = []
        samples: list[str] = []
        errors = 0
        cursor = 0

        async def worker() -> None:
            nonlocal cursor, errors
            while cursor < count:  # bounded: each iteration consumes one of `count` calls
                k = cursor
                cursor += 1
                t0 = time.perf_counter_ns()
                try:
                    response = await client.post(url, content=bodies[k], headers=headers)
                    problem = check_result(response, first + k, text)
                except httpx2.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                latencies.append(time.perf_counter_ns() - t0)
                if problem is not None:
                    errors += 1
                    if len(samples) < 5:
                        samples.append(problem)

        timed_out = False
        try:
            async with asyncio.timeout(time_limit):
                await asyncio.gather(*(worker() for _ in range(concurrency)))
        except TimeoutError:
            timed_out = True
        return latencies, errors, samples, timed_out

    async def phase(self, client: Any, target: Target, concurrency: int, count: int, round_no: int) -> Phase:
        await settle(self.portico, self.upstream)
        before = Snapshot.take(self.portico, self.upstream)
        latencies, errors, samples, timed_out = await self.calls(
            client, target, concurrency, count, self.args.phase_timeout
        )
        after = Snapshot.take(self.portico, self.upstream)
        settle_s = await settle(self.portico, self.upstream)
        portico_end, upstream_end = self.portico.cpu_ticks(), self.upstream.cpu_ticks()

        n = len(latencies)
        wall = after.wall - before.wall
        ms = 1000.0 / CLK_TCK
        per_call = (lambda ticks: ticks * ms / n) if n else (lambda ticks: float("nan"))
        ordered = sorted(latencies)
        bench_ticks = (after.portico - before.portico) + (after.upstream - before.upstream)
        bench_ticks += after.client - before.client
        busy_cores = (after.busy - before.busy) / CLK_TCK / wall
        bench_cores = bench_ticks / CLK_TCK / wall
        return Phase(
            concurrency=concurrency,
            round=round_no,
            target=target.name,
            calls=n,
            errors=errors,
            timed_out=timed_out,
            wall_s=wall,
            calls_per_s=n / wall if wall > 0 else 0.0,
            p50_ms=percentile(ordered, 0.50),
            p99_ms=percentile(ordered, 0.99),
            mean_ms=(sum(ordered) / n / 1e6) if n else float("nan"),
            portico_cpu_ms_per_call=per_call(portico_end - before.portico),
            upstream_cpu_ms_per_call=per_call(upstream_end - before.upstream),
            client_cpu_ms_per_call=per_call(after.client - before.client),
            settle_s=settle_s,
            machine_busy_cores=busy_cores,
            bench_procs_cores=bench_cores,
            other_procs_cores=max(0.0, busy_cores - bench_cores),
            error_samples=samples,
        )


class RawResponse:
    """The three attributes of an httpx2 response that `check_result` reads."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content


class RawClient:
    """`--client raw`: minimal HTTP/1.1 keep-alive POSTs over asyncio streams, one connection per worker.

    Only for loopback and these fixtures: Content-Length or chunked responses, no redirects, no TLS. It exists to
    show how much of the machine the httpx2 client itself takes (its CPU per call is reported either way).
    """

    MAX_CHUNKS = 100_000

    def __init__(self, concurrency: int) -> None:
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._all: list[asyncio.StreamWriter] = []
        self._limit = concurrency

    async def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> RawResponse:
        parsed = httpx2.URL(url)
        head = f"POST {parsed.raw_path.decode()} HTTP/1.1\r\nhost: {parsed.host}:{parsed.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (head + f"content-length: {len(content)}\r\n\r\n").encode("latin-1") + content
        for attempt in (1, 2):  # a second try only when a reused keep-alive connection turned out closed
            reused = False
            while self._idle and not reused:
                reader, writer = self._idle.pop()
                reused = not (reader.at_eof() or writer.is_closing())  # the server closed it while idle
                if not reused:
                    writer.close()
            if not reused:
                try:
                    reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
                except OSError as exc:
                    raise httpx2.ConnectError(str(exc)) from exc
                self._all.append(writer)
            try:
                writer.write(request)
                response, keep = await self._read(reader)
            except asyncio.IncompleteReadError as exc:
                writer.close()
                if reused and attempt == 1 and not exc.partial:
                    continue  # closed by the server before it read the request: safe to send again
                raise httpx2.ReadError(f"IncompleteReadError: {exc}") from exc
            except (OSError, asyncio.LimitOverrunError, ValueError) as exc:
                writer.close()
                raise httpx2.ReadError(f"{type(exc).__name__}: {exc}") from exc
            if keep and len(self._idle) < self._limit:
                self._idle.append((reader, writer))
            else:
                writer.close()
            return response
        raise AssertionError("unreachable")

    async def _read(self, reader: asyncio.StreamReader) -> tuple[RawResponse, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            for _ in range(self.MAX_CHUNKS):
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")  # no trailers from these servers
                    break
                parts.append((await reader.readexactly(size + 2))[:-2])
            else:
                raise ValueError("too many chunks")
            body = b"".join(parts)
        else:
            body = await reader.read()
            return RawResponse(status, headers, body), False
        return RawResponse(status, headers, body), headers.get("connection", "").lower() != "close"

    async def aclose(self) -> None:
        for writer in self._all:
            writer.close()
        self._all.clear()
        self._idle.clear()

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def new_client(concurrency: int, kind: str = "httpx") -> Any:
    if kind == "raw":
        return RawClient(concurrency)
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(30.0),
        limits=httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        trust_env=False,
    )


async def wait_quiet(limit: float) -> dict[str, Any]:
    """Wait (at most `limit` s) until the machine is nearly idle: < 0.3 busy cores over a 2 s window."""
    start = time.monotonic()
    busy_cores = float("nan")
    for _ in range(max(1, int(limit / 2))):
        busy0, _ = machine_ticks()
        t0 = time.perf_counter()
        await asyncio.sleep(2.0)
        busy1, _ = machine_ticks()
        busy_cores = (busy1 - busy0) / CLK_TCK / (time.perf_counter() - t0)
        if busy_cores < 0.3 or time.monotonic() - start >= limit:
            break
    return {
        "waited_s": round(time.monotonic() - start, 1),
        "busy_cores": round(busy_cores, 2),
        "quiet": busy_cores < 0.3,
    }


async def wait_ready(portico: Child, target: Target, text: str) -> None:
    """Until one tools/call through Portico succeeds (bounded)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    problem = "not started"
    async with new_client(1) as client:
        while time.monotonic() < deadline:
            if portico.popen.poll() is not None:
                raise RuntimeError(f"portico exited with {portico.popen.returncode}:\n{portico.log_tail()}")
            try:
                probe = Target(target.name, target.url, target.tool, "modern", token=target.token)
                response = await client.post(probe.url, content=probe.body(0, text), headers=probe.headers())
                problem = check_result(response, 0, text) or ""
                if not problem:
                    return
            except httpx2.TransportError as exc:
                problem = repr(exc)
            await asyncio.sleep(0.2)
    raise RuntimeError(f"portico not ready in {READY_TIMEOUT_S}s: {problem}\n{portico.log_tail()}")


# ------------------------------------------------------------------------------------------------ run


async def run(args: argparse.Namespace, report: dict[str, Any]) -> list[Phase]:
    phases: list[Phase] = []
    main_task = asyncio.current_task()
    if main_task is not None:  # SIGTERM: cancel, so the finally blocks below stop both children
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    if args.wait_quiet > 0:
        report["machine"]["wait_quiet"] = await wait_quiet(args.wait_quiet)
        log(args, f"machine before start: {report['machine']['wait_quiet']}")
    report["machine"]["loadavg_start"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="portico-bench-") as tmp_name:
        tmp = Path(tmp_name)
        upstream = Child(
            "upstream",
            [sys.executable, "-m", "tests.upstreams.echo", "--transport", "http", "--port", "0"],
            pipe_stdout=True,
        )
        portico: Child | None = None
        try:
            upstream_url = upstream.read_listening(READY_TIMEOUT_S)
            port = free_port()
            config = write_config(tmp, upstream_url, args.fsync, args.auth, port)
            if args.path == "portal":
                through = Target("portico", f"http://127.0.0.1:{port}/mcp", f"{SERVER_ID}__echo", args.era)
            else:
                through = Target("portico", f"http://127.0.0.1:{port}/servers/{SERVER_ID}/mcp", "echo", args.era)
            if args.auth == "oauth":
                through.token = bench_token(config, through.url)
            portico = Child("portico", portico_argv(config, port, args.portico_cmd))
            direct = Target("direct", upstream_url, "echo", args.era)
            await wait_ready(portico, through, args.text)
            report["processes"] = {
                "portico": {"pid": portico.pid, "argv": portico.argv, "url": through.url, "tool": through.tool},
                "upstream": {"pid": upstream.pid, "argv": upstream.argv, "url": direct.url, "tool": direct.tool},
            }
            if args.era == "legacy":
                async with new_client(1) as client:
                    for target in (direct, through):
                        await open_legacy_session(client, target)
            bench = Bench(args, portico, upstream)
            for concurrency, count in zip(args.concurrency, args.calls, strict=True):
                clients = {t.name: new_client(concurrency, args.client) for t in (direct, through)}
                try:
                    for target in (direct, through):  # warm-up: connections, caches, JIT-free but allocator-warm
                        _, errors, samples, timed_out = await bench.calls(
                            clients[target.name], target, concurrency, args.warmup, args.phase_timeout
                        )
                        if errors == args.warmup or timed_out:
                            raise RuntimeError(f"warm-up against {target.name} failed: {samples}")
                        log(args, f"warm-up c={concurrency} {target.name}: {args.warmup} calls, {errors} errors")
                    for round_no in range(1, args.rounds + 1):
                        for target in (direct, through):
                            result = await bench.phase(clients[target.name], target, concurrency, count, round_no)
                            phases.append(result)
                            log(
                                args,
                                f"c={concurrency} round {round_no} {target.name}: "
                                f"{result.calls_per_s:.0f} calls/s, p50 {result.p50_ms:.2f} ms, "
                                f"{result.errors} errors",
                            )
                finally:
                    for client in clients.values():
                        await client.aclose()
            if portico.popen.poll() is not None:
                raise RuntimeError(f"portico exited during the run:\n{portico.log_tail()}")
        finally:
            if portico is not None:
                portico.stop()
            upstream.stop()
    return phases


def log(args: argparse.Namespace, line: str) -> None:
    if not args.quiet:
        print(f"  [{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def summarize(phases: list[Phase], args: argparse.Namespace) -> list[dict[str, Any]]:
    summary = []
    for concurrency in args.concurrency:
        rows = [p for p in phases if p.concurrency == concurrency]
        ratios, gw_cpu = [], []
        for round_no in range(1, args.rounds + 1):
            pair = {p.target: p for p in rows if p.round == round_no}
            if "direct" in pair and "portico" in pair and pair["direct"].calls_per_s > 0:
                ratios.append(pair["portico"].calls_per_s / pair["direct"].calls_per_s)
                gw_cpu.append(pair["portico"].portico_cpu_ms_per_call)
        errors = sum(p.errors for p in rows) + sum(1 for p in rows if p.timed_out)
        summary.append(
            {
                "concurrency": concurrency,
                "ratio_per_round": ratios,
                "portico_cpu_ms_per_call_per_round": gw_cpu,
                "ratio_ok": bool(ratios) and min(ratios) >= TARGET_RATIO,
                "cpu_ok": bool(gw_cpu) and max(gw_cpu) <= TARGET_GW_CPU_MS,
                "errors": errors,
                "valid": errors == 0,
            }
        )
    return summary


def render(report: dict[str, Any], phases: list[Phase], summary: list[dict[str, Any]]) -> str:
    out = []
    cfg = report["config"]
    out.append(
        f"Portico overhead: tools/call echo({cfg['text']!r}), Streamable HTTP, era {cfg['era']} "
        f"({MODERN if cfg['era'] == 'modern' else LEGACY}), audit on (fsync {cfg['fsync']}), "
        f"auth {cfg.get('auth', 'none')}, "
        f"Portico path {report.get('processes', {}).get('portico', {}).get('url', '?')}"
    )
    out.append(f"command: {report['command']}")
    if cfg["portico_cmd"] or cfg["portico_env"]:
        env = " ".join(cfg["portico_env"]) or "none"
        out.append(f"Portico started as: {cfg['portico_cmd'] or 'portico serve'}; PORTICO_* environment: {env}")
    m = report["machine"]
    out.append(
        f"machine: nproc {m['nproc']}, loadavg at start {m['loadavg_start']}, at end {m.get('loadavg_end')}, "
        f"{m['python']}, client {cfg['client']} on {m['client_loop']}; git {m['git']}"
    )
    out.append("")
    head = (
        f"{'c':>3} {'rnd':>3} {'target':<8} {'calls':>6} {'err':>4} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'portico':>8} {'upstrm':>7} {'client':>7} {'busy':>5} {'other':>5}"
    )
    out.append(head)
    out.append(f"{'':>44}{'CPU ms/call':^26}{'cores':^12}")
    for p in phases:
        flag = " TIMEOUT" if p.timed_out else ""
        out.append(
            f"{p.concurrency:>3} {p.round:>3} {p.target:<8} {p.calls:>6} {p.errors:>4} {p.calls_per_s:>8.0f} "
            f"{p.p50_ms:>7.2f} {p.p99_ms:>7.2f} {p.portico_cpu_ms_per_call:>8.2f} "
            f"{p.upstream_cpu_ms_per_call:>7.2f} {p.client_cpu_ms_per_call:>7.2f} "
            f"{p.machine_busy_cores:>5.2f} {p.other_procs_cores:>5.2f}{flag}"
            f"{'  (noisy)' if p.other_procs_cores > NOISY_CORES else ''}"
        )
    out.append("")
    out.append(
        f"targets: throughput through/direct >= {TARGET_RATIO}x;  Portico CPU <= {TARGET_GW_CPU_MS} ms/call"
        "   (measured peers: 0.02-0.38x; the SDK's own server and client each spend ~3 ms CPU/call here)"
    )
    for s in summary:
        ratios = ", ".join(f"{r:.2f}x" for r in s["ratio_per_round"])
        cpus = ", ".join(f"{c:.2f}" for c in s["portico_cpu_ms_per_call_per_round"])
        verdict = (
            "INVALID (errors/timeouts: " + str(s["errors"]) + ")"
            if not s["valid"]
            else (f"ratio {'MET' if s['ratio_ok'] else 'MISSED'}, CPU {'MET' if s['cpu_ok'] else 'MISSED'}")
        )
        out.append(f"  c={s['concurrency']:<3} through/direct {ratios:<16} Portico CPU ms/call {cpus:<12} -> {verdict}")
    for p in phases:
        for sample in p.error_samples:
            out.append(f"  error sample (c={p.concurrency} round {p.round} {p.target}): {sample}")
    out.append("")
    out.append(
        "CPU ms/call: utime+stime from /proc/<pid>/stat over the phase (Portico/upstream also over the bounded "
        "idle wait after it, to catch trailing work such as the audit flush), divided by the calls. "
        "busy: machine CPUs in use during the phase (of nproc); other: busy minus the three bench processes "
        f"(flagged noisy above {NOISY_CORES})."
    )
    return "\n".join(out)


def portico_env() -> list[str]:
    """PORTICO_* overrides inherited by the Portico process (values of secret-looking names withheld)."""
    secret = ("KEY", "TOKEN", "SECRET", "PASSWORD", "AUTH")
    return sorted(
        f"{k}={'***' if any(word in k.upper() for word in secret) else v}"
        for k, v in os.environ.items()
        if k.startswith("PORTICO_")
    )


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted src/ changes' if dirty else ''}"


def int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Portico overhead: direct vs through Portico, same echo call.")
    parser.add_argument(
        "--era",
        choices=["modern", "legacy"],
        default="modern",
        help="modern: stateless 2026-07-28 POSTs; legacy: initialize once, then Mcp-Session-Id",
    )
    parser.add_argument("--concurrency", type=int_list, default=[1, 16], help="levels, e.g. 1,16 (default)")
    parser.add_argument(
        "--calls",
        type=int_list,
        default=None,
        help="timed calls per phase, one per level (default 2000 at c=1, 4000 otherwise)",
    )
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls per target and level (default 200)")
    parser.add_argument("--rounds", type=int, default=2, help="direct/through alternations per level (default 2)")
    parser.add_argument(
        "--path",
        choices=["portal", "server"],
        default="portal",
        help="Portico URL: /mcp with echo__echo (default) or /servers/echo/mcp with echo",
    )
    parser.add_argument("--text", default="hello portico", help="the echo argument")
    parser.add_argument("--fsync", action="store_true", help="audit.fsync: true (default false, Portico's default)")
    parser.add_argument(
        "--auth",
        choices=["none", "oauth"],
        default="none",
        help="oauth: Portico requires a bearer token (one minted with `portico token issue`) on every call",
    )
    parser.add_argument("--phase-timeout", type=float, default=300.0, help="seconds before a phase is cut short")
    parser.add_argument(
        "--portico-cmd",
        metavar="TEMPLATE",
        help="run this instead of `portico serve` (e.g. a patched build, to A/B it): a command line with {python}, "
        "{config} and {port} placeholders; the pid it starts is the one measured",
    )
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="load generator: httpx2.AsyncClient (default) or a minimal raw HTTP/1.1 client",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="first wait up to S seconds for the machine to be idle (< 0.3 busy cores over 2 s)",
    )
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio loop for the load generator")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.calls is None:
        args.calls = [2000 if c == 1 else 4000 for c in args.concurrency]
    if len(args.calls) != len(args.concurrency):
        parser.error("--calls needs one count per --concurrency level")
    if args.warmup < 1 or args.rounds < 1 or args.phase_timeout <= 0:
        parser.error("--warmup and --rounds must be >= 1, --phase-timeout > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(
        [
            os.path.relpath(sys.executable, Path.cwd()) if sys.executable.startswith(str(REPO)) else sys.executable,
            os.path.relpath(__file__, Path.cwd()),
            *sys.argv[1:],
        ]
    )
    loop_name = "asyncio"
    runner_factory = None
    if not args.no_uvloop:
        try:
            import uvloop

            runner_factory = uvloop.new_event_loop
            loop_name = f"uvloop {uvloop.__version__}"
        except ImportError:
            pass
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
        "config": {
            "era": args.era,
            "concurrency": args.concurrency,
            "calls": args.calls,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "path": args.path,
            "text": args.text,
            "fsync": args.fsync,
            "auth": args.auth,
            "client": args.client,
            "portico_cmd": args.portico_cmd,
            "portico_env": portico_env(),
        },
        "machine": {
            "nproc": os.cpu_count(),
            "loadavg_start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
            "python": f"Python {platform.python_version()}",
            "client_loop": loop_name,
            "git": git_state(),
            "clk_tck": CLK_TCK,
        },
        "targets": {"ratio_min": TARGET_RATIO, "portico_cpu_ms_per_call_max": TARGET_GW_CPU_MS},
    }
    with asyncio.Runner(loop_factory=runner_factory) as runner:
        phases = runner.run(run(args, report))
    report["machine"]["loadavg_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    summary = summarize(phases, args)
    report["phases"] = [p.__dict__ for p in phases]
    report["summary"] = summary
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report, phases, summary))
    return 0 if all(s["valid"] for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())

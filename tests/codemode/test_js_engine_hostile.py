"""Hostile code against the JavaScript engine. Every run must end within its wall time + 0.5 s (a containment bound,
not a performance figure) while the gateway's event loop keeps ticking, and the engine must run a normal program
right after. Nothing of the host (files, network, environment, the gateway process) is reachable, and nothing of
one run is visible to the next."""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import platform
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from portico.codemode.engine import ErrorKind, Limits, Program, RunResult
from portico.codemode.js import JsEngine
from portico.codemode.js import worker as worker_module

pytestmark = pytest.mark.anyio

FAST = Limits(cpu_s=0.5, wall_s=1.5, memory_bytes=32 * 1024 * 1024, max_calls=50, max_log_bytes=4096)
ROOMY_CPU = Limits(cpu_s=8.0, wall_s=8.0, memory_bytes=32 * 1024 * 1024)  # the memory limit must come first
CONTAINMENT_S = 0.5
MAX_TICK_GAP_S = 0.5


@pytest.fixture
async def engine() -> AsyncIterator[JsEngine]:
    engine = JsEngine(warm_workers=2, max_workers=4)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.aclose()


async def ping(args: dict[str, Any]) -> Any:
    return "pong"


async def contained(engine: JsEngine, program: Program, limits: Limits = FAST) -> RunResult:
    """Run `program` while a concurrent task ticks: the run ends in time, the loop never stalls, and the engine
    still works afterwards."""
    ticks: list[float] = []
    finished = anyio.Event()

    async def ticker() -> None:
        while not finished.is_set():
            ticks.append(time.monotonic())
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        started = time.monotonic()
        with anyio.fail_after(limits.wall_s + 10):
            result = await engine.run(program, limits)
        elapsed = time.monotonic() - started
        finished.set()
    ticks.append(time.monotonic())

    assert elapsed < limits.wall_s + CONTAINMENT_S, f"the run took {elapsed:.2f} s"
    assert max(b - a for a, b in itertools.pairwise(ticks)) < MAX_TICK_GAP_S
    with anyio.fail_after(10):
        after = await engine.run(Program("const a = [1, 2, 3]\na.reduce((x, y) => x + y)"), Limits())
    assert after.value == 6, after.error
    return result


def kind(result: RunResult) -> ErrorKind:
    assert result.error is not None, f"expected an error, got {result.value!r}"
    return result.error.kind


# ------------------------------------------------------------------------------------------------ time


async def test_an_infinite_loop_hits_the_cpu_limit(engine: JsEngine):
    result = await contained(engine, Program("while (true) {}"))
    assert kind(result) is ErrorKind.TIMEOUT
    assert "CPU" in result.error.message  # type: ignore[union-attr]


async def test_an_infinite_loop_under_a_generous_cpu_limit_hits_the_wall_clock(engine: JsEngine):
    result = await contained(engine, Program("let x = 0\nwhile (true) x++"), Limits(cpu_s=60, wall_s=0.7))
    assert kind(result) is ErrorKind.TIMEOUT
    assert "longer than" in result.error.message  # type: ignore[union-attr]


async def test_a_loop_after_an_await_is_stopped(engine: JsEngine):
    program = Program("await codemode.ping({})\nwhile (true) {}", functions={"ping": ping})
    result = await contained(engine, program)
    assert kind(result) is ErrorKind.TIMEOUT
    assert result.calls == 1


async def test_a_loop_after_an_await_is_stopped_by_the_wall_clock(engine: JsEngine):
    program = Program("await null\nwhile (true) {}")
    result = await contained(engine, program, Limits(cpu_s=60, wall_s=0.7))
    assert kind(result) is ErrorKind.TIMEOUT


async def test_an_endless_microtask_chain_is_stopped(engine: JsEngine):
    result = await contained(engine, Program("const spin = () => Promise.resolve().then(spin)\nspin()\nawait spin()"))
    assert kind(result) in (ErrorKind.TIMEOUT, ErrorKind.MEMORY)  # each turn keeps a promise alive


async def test_a_promise_that_never_settles_ends_at_the_wall_clock(engine: JsEngine):
    result = await contained(engine, Program("await new Promise(() => {})"), Limits(wall_s=0.5))
    assert kind(result) is ErrorKind.TIMEOUT


async def test_a_slow_host_function_counts_against_the_wall_clock(engine: JsEngine):
    async def slow(args: dict[str, Any]) -> Any:
        await anyio.sleep(30)

    result = await contained(engine, Program("await codemode.slow({})", functions={"slow": slow}), Limits(wall_s=0.5))
    assert kind(result) is ErrorKind.TIMEOUT
    assert result.calls == 1


async def test_a_timer_cannot_outlive_the_wall_clock(engine: JsEngine):
    code = "await new Promise(resolve => setTimeout(resolve, 60000))"
    result = await contained(engine, Program(code), Limits(wall_s=0.5))
    assert kind(result) is ErrorKind.TIMEOUT


# ------------------------------------------------------------------------------------------------ memory


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("new Array(2**31).fill(0)", id="array-2**31"),
        pytest.param("const a = []\nwhile (true) a.push([1, 2, 3, 4, 5, 6, 7, 8])", id="heap-growth"),
        pytest.param("await null\nconst a = []\nwhile (true) a.push({x: Math.random()})", id="heap-growth-after-await"),
        pytest.param("const a = []\nwhile (true) a.push(new ArrayBuffer(256 * 1024 * 1024))", id="arraybuffer"),
        pytest.param(
            "const a = []\nwhile (true) { const b = new Uint8Array(16 * 1024 * 1024); b.fill(1); a.push(b) }",
            id="typed-arrays-touched",
        ),
        pytest.param("let s = 'ab'\nwhile (true) { s = s + s; s.indexOf('z') }", id="string-doubling-flattened"),
        pytest.param(
            "JSON.parse('['.repeat(10) + '1' + ']'.repeat(10)); let o = {}; while (true) o = {o, p: [o, o]}",
            id="object-graph",
        ),
    ],
)
async def test_a_memory_bomb_hits_the_memory_limit(engine: JsEngine, code: str):
    result = await contained(engine, Program(code), ROOMY_CPU)
    assert kind(result) is ErrorKind.MEMORY


async def test_string_doubling_ends_at_v8s_string_length_limit(engine: JsEngine):
    result = await contained(engine, Program("let s = 'x'\nwhile (true) s += s"))
    assert kind(result) in (ErrorKind.RUNTIME, ErrorKind.MEMORY)


async def test_an_arraybuffer_bomb_stays_under_the_process_memory_ceiling(engine: JsEngine):
    code = (
        "const a = []\n"
        "for (let i = 0; i < 64; i++) { try { a.push(new ArrayBuffer(64 * 1024 * 1024)) } catch {} }\n"
        "a.length"
    )
    result = await contained(engine, Program(code), ROOMY_CPU)
    # Every allocation past the run's budget is refused; the code may swallow the refusals and report how many
    # it got, which is bounded by (2 x memory_bytes + slack) / 64 MiB.
    if result.ok:
        assert result.value <= 5
    else:
        assert kind(result) is ErrorKind.MEMORY


async def test_deep_recursion_is_a_runtime_error(engine: JsEngine):
    result = await contained(engine, Program("const f = (n) => f(n + 1) + 1\nf(0)"))
    assert kind(result) is ErrorKind.RUNTIME
    assert "Maximum call stack size exceeded" in result.error.message  # type: ignore[union-attr]


async def test_deep_async_recursion_is_contained(engine: JsEngine):
    result = await contained(engine, Program("const f = async (n) => (await f(n + 1)) + 1\nawait f(0)"), ROOMY_CPU)
    assert not result.ok


# ------------------------------------------------------------------------------------------------ calls and output


async def test_the_call_past_the_limit_ends_the_run_before_it_starts(engine: JsEngine):
    served = 0

    async def count(args: dict[str, Any]) -> Any:
        nonlocal served
        served += 1
        return served

    code = "for (let i = 0; i < 51; i++) await codemode.count({})\n'unreachable'"
    result = await contained(engine, Program(code, functions={"count": count}))
    assert kind(result) is ErrorKind.LIMIT
    assert result.calls == 50
    assert served == 50


async def test_catching_the_call_limit_does_not_let_the_run_continue(engine: JsEngine):
    code = "let n = 0\nwhile (true) { try { await codemode.ping({}); n++ } catch (e) {} }"
    result = await contained(engine, Program(code, functions={"ping": ping}))
    assert kind(result) is ErrorKind.LIMIT
    assert result.calls == 50


async def test_concurrent_calls_past_the_limit_end_the_run(engine: JsEngine):
    code = "await Promise.all(Array.from({length: 80}, () => codemode.ping({})))"
    result = await contained(engine, Program(code, functions={"ping": ping}))
    assert kind(result) is ErrorKind.LIMIT
    assert result.calls == 50


async def test_an_output_flood_is_truncated(engine: JsEngine):
    code = "for (let i = 0; i < 200000; i++) console.log('flood ' + i)\n'survived'"
    result = await contained(engine, Program(code), ROOMY_CPU)
    assert result.value == "survived"
    assert result.logs_truncated is True
    assert len(result.logs.encode()) == ROOMY_CPU.max_log_bytes
    assert result.logs.startswith("flood 0\nflood 1\n")


async def test_an_endless_output_flood_ends_at_the_cpu_limit(engine: JsEngine):
    result = await contained(engine, Program("while (true) console.log('x'.repeat(10000))"))
    assert kind(result) is ErrorKind.TIMEOUT
    assert len(result.logs.encode()) <= FAST.max_log_bytes


async def test_output_written_before_a_wait_that_never_ends_is_kept(engine: JsEngine):
    result = await contained(engine, Program("console.log('before')\nawait new Promise(() => {})"), Limits(wall_s=0.5))
    assert kind(result) is ErrorKind.TIMEOUT
    assert result.logs == "before\n"


async def test_one_huge_log_line_is_cut(engine: JsEngine):
    result = await contained(engine, Program("console.log('y'.repeat(4 * 1024 * 1024))\n1"), ROOMY_CPU)
    assert result.value == 1
    assert result.logs_truncated is True
    assert len(result.logs) == ROOMY_CPU.max_log_bytes


# ------------------------------------------------------------------------------------------------ escapes


ALLOWED_GLOBALS = {
    # ECMAScript and ECMA-402 built-ins of this V8
    "Object",
    "Function",
    "Array",
    "Number",
    "parseFloat",
    "parseInt",
    "Infinity",
    "NaN",
    "undefined",
    "Boolean",
    "String",
    "Symbol",
    "Date",
    "Promise",
    "RegExp",
    "Error",
    "AggregateError",
    "EvalError",
    "RangeError",
    "ReferenceError",
    "SyntaxError",
    "TypeError",
    "URIError",
    "globalThis",
    "JSON",
    "Math",
    "Intl",
    "ArrayBuffer",
    "Atomics",
    "Uint8Array",
    "Int8Array",
    "Uint16Array",
    "Int16Array",
    "Uint32Array",
    "Int32Array",
    "BigUint64Array",
    "BigInt64Array",
    "Uint8ClampedArray",
    "Float32Array",
    "Float64Array",
    "Float16Array",
    "DataView",
    "Map",
    "BigInt",
    "Set",
    "Iterator",
    "WeakMap",
    "WeakSet",
    "Proxy",
    "Reflect",
    "FinalizationRegistry",
    "WeakRef",
    "decodeURI",
    "decodeURIComponent",
    "encodeURI",
    "encodeURIComponent",
    "escape",
    "unescape",
    "eval",
    "isFinite",
    "isNaN",
    "Temporal",
    "SuppressedError",
    "DisposableStack",
    "AsyncDisposableStack",
    "SharedArrayBuffer",
    # Code Mode's own, and mini-racer's timer
    "codemode",
    "console",
    "setTimeout",
    "clearTimeout",
    "__timer_manager",
    # this program's data
    "tools",
}


async def test_the_global_object_holds_only_javascript_built_ins_and_code_modes_own(engine: JsEngine):
    result = await contained(engine, Program("Reflect.ownKeys(globalThis).map(String)", data={"tools": []}))
    names = set(result.value)
    assert names - ALLOWED_GLOBALS == set(), names - ALLOWED_GLOBALS


@pytest.mark.parametrize(
    "name",
    [
        "require",
        "process",
        "module",
        "exports",
        "Buffer",
        "__dirname",
        "fetch",
        "XMLHttpRequest",
        "WebSocket",
        "EventSource",
        "navigator",
        "location",
        "importScripts",
        "Deno",
        "Bun",
        "WebAssembly",
        "performance",
        "Worker",
        "os",
        "std",
        "print",
        "load",
        "read",
        "quit",
    ],
)
async def test_no_host_api_is_reachable(engine: JsEngine, name: str):
    result = await contained(engine, Program(f"typeof {name}"))
    assert result.value == "undefined"


@pytest.mark.parametrize(
    "code",
    [
        "[].constructor.constructor('return typeof process')()",
        "Function('return this')().process === undefined ? 'undefined' : 'leak'",
        "(function () { return this })().constructor.constructor('return typeof require')()",
        "Object.getPrototypeOf(async function () {}).constructor('return typeof fetch')().then(x => x)",
        "eval('typeof process')",
        "await codemode.ping.constructor('return typeof process')()",
        "Object.getPrototypeOf(codemode) === null ? 'undefined' : 'codemode has a prototype'",
    ],
)
async def test_constructor_chains_lead_back_to_the_sandbox_only(engine: JsEngine, code: str):
    result = await contained(engine, Program(code, functions={"ping": ping}))
    assert result.value == "undefined"


async def test_dynamic_import_of_a_host_module_fails(engine: JsEngine):
    code = """
const out = []
for (const m of ['fs', 'node:fs', 'child_process', '/etc/passwd', 'https://example.com/x.js']) {
  try { await import(m); out.push('loaded ' + m) } catch (e) { out.push('refused') }
}
out
"""
    result = await contained(engine, Program(code))
    assert result.value == ["refused"] * 5


async def test_a_static_import_is_a_syntax_error(engine: JsEngine):
    result = await contained(engine, Program("import fs from 'fs'\nfs.readFileSync('/etc/passwd')"))
    assert kind(result) is ErrorKind.SYNTAX


async def test_a_thrown_error_never_carries_host_paths(engine: JsEngine):
    result = await contained(engine, Program("await codemode.boom({})", functions={"boom": boom}))
    assert kind(result) is ErrorKind.TOOL
    assert "/" not in result.error.message  # type: ignore[union-attr]
    assert "Traceback" not in result.error.message  # type: ignore[union-attr]


async def boom(args: dict[str, Any]) -> Any:
    raise RuntimeError(f"failed in {Path(__file__)}")


async def test_the_worker_process_holds_no_environment_files_or_privileges(engine: JsEngine):
    worker = engine.pool.idle_workers()[0]
    proc = Path(f"/proc/{worker.pid}")
    assert os.environ, "the test process has an environment to leak"
    assert (proc / "environ").read_bytes() == b""
    assert os.listdir(os.readlink(proc / "cwd")) == []
    targets = [os.readlink(proc / "fd" / fd) for fd in os.listdir(proc / "fd")]
    own_status = f"/proc/{worker.pid}/status"  # opened before confinement, to read its memory use
    assert [t for t in targets if not t.startswith(("socket:", "pipe:", "anon_inode:", "/dev/null", own_status))] == []
    assert sum(t.startswith("socket:") for t in targets) <= 3  # the parent's socket and asyncio's own pair
    limits = (proc / "limits").read_text()
    assert any(
        line.startswith("Max core file size") and line.split()[4:6] == ["0", "0"] for line in limits.splitlines()
    )
    assert any(line.startswith("Max file size") and line.split()[3:5] == ["0", "0"] for line in limits.splitlines())
    assert os.getpgid(worker.pid) == worker.pid != os.getpgid(0)
    status = (proc / "status").read_text()
    assert "NoNewPrivs:\t1" in status


def proc_text(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_text()


def landlock_abi() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return int(libc.syscall(444, None, 0, 1))  # landlock_create_ruleset(NULL, 0, VERSION)


async def test_the_worker_gives_up_files_network_exec_and_other_processes(engine: JsEngine):
    worker = engine.pool.idle_workers()[0]
    expected = set()
    if platform.machine() != "x86_64":
        expected.add("seccomp")
    if landlock_abi() < 1:
        expected.add("landlock")
    assert set(worker.unconfined) == expected
    status = proc_text(worker.pid, "status")
    if "seccomp" not in expected:
        assert "Seccomp:\t2" in status
    # and it still runs programs, host calls included, in fresh isolates
    for _ in range(3):
        result = await contained(engine, Program("await codemode.ping({})", functions={"ping": ping}))
        assert result.value == "pong"


CONFINED_PROBE = """
import json, os, socket, subprocess, sys, threading
sys.path.insert(0, sys.argv[1])
import worker
worker.limit_process(1 << 30, os.getppid())
missing = worker.confine()
def attempt(action):
    try:
        action()
        return "allowed"
    except OSError as exc:
        return type(exc).__name__
thread = threading.Thread(target=lambda: None)
thread.start()
thread.join()
print(json.dumps({
    "missing": missing,
    "read": attempt(lambda: open("/etc/hostname").read()),
    "list": attempt(lambda: os.listdir("/")),
    "socket": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)),
    "unix": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)),
    "exec": attempt(lambda: subprocess.run(["/bin/true"])),
    "signal": attempt(lambda: os.kill(os.getppid(), 0)),
    "thread": "allowed",
}))
"""


async def test_confinement_takes_away_files_sockets_exec_and_signals():
    if platform.machine() != "x86_64" or landlock_abi() < 6:
        pytest.skip("needs x86_64 and Landlock ABI 6 (Linux 6.12)")
    script_dir = str(Path(worker_module.__file__).parent)
    with anyio.fail_after(30):
        done = await anyio.run_process([sys.executable, "-I", "-c", CONFINED_PROBE, script_dir])
    assert json.loads(done.stdout) == {
        "missing": [],
        "read": "PermissionError",
        "list": "PermissionError",
        "socket": "PermissionError",
        "unix": "PermissionError",
        "exec": "PermissionError",
        "signal": "PermissionError",
        "thread": "allowed",
    }


async def test_a_worker_killed_mid_run_is_reported_as_crashed_and_replaced(engine: JsEngine):
    victims = [worker.pid for worker in engine.pool.idle_workers()]

    async def kill_my_sandbox(args: dict[str, Any]) -> Any:
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        await anyio.sleep(0.2)
        return None

    result = await contained(engine, Program("await codemode.kill({})\n1", functions={"kill": kill_my_sandbox}))
    assert kind(result) is ErrorKind.CRASHED


# ------------------------------------------------------------------------------------------------ isolation


async def test_a_global_set_in_one_run_is_invisible_to_the_next_on_the_same_worker():
    engine = JsEngine(warm_workers=1, max_workers=1)
    await engine.start()
    try:
        pid = engine.pool.idle_workers()[0].pid
        first = await contained(
            engine, Program("globalThis.secret = 'run 1'\nvar leaked = 1\nObject.prototype.polluted = true\n'set'")
        )
        assert first.value == "set"
        second = await contained(
            engine, Program("[typeof secret, typeof leaked, ({}).polluted === undefined, typeof codemode.x]")
        )
        assert second.value == ["undefined", "undefined", True, "undefined"]
        assert engine.pool.idle_workers()[0].pid == pid  # the same process served both runs
    finally:
        await engine.aclose()


async def test_a_run_cannot_replace_the_next_runs_built_ins():
    engine = JsEngine(warm_workers=1, max_workers=1)
    await engine.start()
    try:
        tamper = (
            "JSON.stringify = () => 'owned'\nArray.prototype.map = null\nconsole.log = null\nPromise.resolve = null\n1"
        )
        await contained(engine, Program(tamper))
        result = await contained(engine, Program("[1, 2].map(x => x * 2)"))
        assert result.value == [2, 4]
    finally:
        await engine.aclose()


async def test_a_run_that_tampers_with_its_own_runtime_still_gets_a_faithful_outcome(engine: JsEngine):
    code = "JSON.stringify = () => '{\"forged\": true}'\nPromise.prototype.then = null\nreturn {real: true}"
    result = await contained(engine, Program(code))
    assert result.value == {"real": True} or not result.ok

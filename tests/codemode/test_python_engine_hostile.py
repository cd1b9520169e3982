"""Hostile code against the Python engine: every run is contained within its deadline + 0.5 s, the gateway's event
loop keeps ticking throughout, a normal program runs right after, and nothing of the host leaks in or out."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from portico.codemode.engine import ErrorKind, Limits, Program, RunResult
from portico.codemode.python import PythonEngine

pytestmark = pytest.mark.anyio

FAST = Limits(cpu_s=0.5, wall_s=1.5, memory_bytes=32 * 1024 * 1024, max_calls=50, max_log_bytes=4096)
CONTAINMENT_S = 0.5  # the bound: a run ends within its wall time plus this
MAX_TICK_GAP_S = 0.5  # the event loop must never be blocked longer than this


@pytest.fixture
async def engine() -> AsyncIterator[PythonEngine]:
    engine = PythonEngine(max_workers=4)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.aclose()


async def contained(engine: PythonEngine, program: Program, limits: Limits = FAST) -> RunResult:
    """Run `program` while a concurrent task ticks; assert containment, a live loop and a working engine."""
    ticks: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.monotonic())
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        started = time.monotonic()
        with anyio.fail_after(limits.wall_s + 10):
            result = await engine.run(program, limits)
        elapsed = time.monotonic() - started
        done.set()
    ticks.append(time.monotonic())

    assert elapsed < limits.wall_s + CONTAINMENT_S, f"run took {elapsed:.2f} s"
    assert max(b - a for a, b in itertools.pairwise(ticks)) < MAX_TICK_GAP_S
    after = await engine.run(Program("sum([1, 2, 3])"), Limits())
    assert after.value == 6
    return result


def kind(result: RunResult) -> ErrorKind:
    assert result.error is not None, f"expected an error, got {result.value!r}"
    return result.error.kind


async def test_an_infinite_loop_hits_the_cpu_limit(engine: PythonEngine) -> None:
    result = await contained(engine, Program("while True:\n    pass"))
    assert kind(result) is ErrorKind.TIMEOUT


async def test_an_infinite_loop_under_a_generous_cpu_limit_hits_the_wall_clock(engine: PythonEngine) -> None:
    result = await contained(engine, Program("x = 0\nwhile True:\n    x += 1"), Limits(cpu_s=60, wall_s=0.5))
    assert kind(result) is ErrorKind.TIMEOUT
    assert "wall" in result.error.message  # type: ignore[union-attr]


async def test_a_loop_after_an_await_is_still_stopped(engine: PythonEngine) -> None:
    async def ping(arguments: dict[str, Any]) -> str:
        return "pong"

    code = "await codemode.ping()\nawait asyncio.sleep(0)\nwhile True:\n    pass"
    result = await contained(engine, Program(code, functions={"ping": ping}))
    assert kind(result) is ErrorKind.TIMEOUT
    assert result.calls == 1


async def test_a_host_call_that_never_answers_ends_at_the_wall_clock(engine: PythonEngine) -> None:
    async def hang(arguments: dict[str, Any]) -> None:
        await anyio.sleep_forever()

    result = await contained(engine, Program("await codemode.hang()", functions={"hang": hang}))
    assert kind(result) is ErrorKind.TIMEOUT


@pytest.mark.parametrize(
    "code",
    [
        "[0] * 10**10",
        "s = 'x'\nwhile True:\n    s = s + s",
        "a = []\nwhile True:\n    a = [a, a, a, list(range(100))]",
        "a = []\nfor i in range(10**9):\n    a.append([i])",
        "10 ** (10 ** 8)",
        "import json\nd = {str(i): i for i in range(10**7)}\njson.dumps(d)",
        "'x' * 2**40",
    ],
)
async def test_a_memory_bomb_hits_the_memory_limit(engine: PythonEngine, code: str) -> None:
    result = await contained(engine, Program(code), Limits(cpu_s=2, wall_s=3, memory_bytes=32 * 1024 * 1024))
    assert kind(result) is ErrorKind.MEMORY


async def test_deep_recursion_is_a_recursion_error(engine: PythonEngine) -> None:
    result = await contained(engine, Program("def f(n):\n    return f(n + 1) + 1\nf(0)"))
    assert kind(result) is ErrorKind.RUNTIME
    assert result.error.message.startswith("RecursionError")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "code",
    [
        "for i in range(51):\n    await codemode.count()",
        "for i in range(51):\n    try:\n        await codemode.count()\n    except Exception:\n        pass",
        "await asyncio.gather(*[codemode.count() for i in range(51)])",
        "while True:\n    try:\n        await codemode.count()\n    except BaseException:\n        pass",
    ],
)
async def test_more_host_calls_than_allowed_end_the_run_before_the_extra_call(engine: PythonEngine, code: str) -> None:
    received: list[int] = []

    async def count(arguments: dict[str, Any]) -> int:
        received.append(1)
        return len(received)

    result = await contained(engine, Program(code, functions={"count": count}))
    assert kind(result) is ErrorKind.LIMIT
    assert result.calls == 50
    assert len(received) == 50


async def test_endless_awaits_without_host_calls_hit_the_suspension_backstop(engine: PythonEngine) -> None:
    result = await contained(engine, Program("while True:\n    await asyncio.sleep(0.0001)"), Limits(cpu_s=5, wall_s=5))
    assert kind(result) is ErrorKind.LIMIT


async def test_a_print_flood_is_cut_and_ends_the_run(engine: PythonEngine) -> None:
    result = await contained(engine, Program("while True:\n    print('spam ' * 200)"))
    assert kind(result) in (ErrorKind.LIMIT, ErrorKind.TIMEOUT)
    assert result.logs_truncated
    assert len(result.logs.encode()) <= FAST.max_log_bytes
    assert result.logs.startswith("spam spam")


@pytest.mark.parametrize(
    "code",
    [
        "open('/etc/passwd').read()",
        "open('/etc/hostname').read()",
        "import pathlib\npathlib.Path('/etc/passwd').read_text()",
        "import os\nos.listdir('/')",
        "open('{tmp}/written.txt', 'w').write('x')",
        "import pathlib\npathlib.Path('{tmp}/written.txt').write_text('x')",
        "import os\nos.remove('{tmp}/keep.txt')",
    ],
)
async def test_the_code_cannot_reach_files(engine: PythonEngine, tmp_path: Path, code: str) -> None:
    (tmp_path / "keep.txt").write_text("keep")
    result = await contained(engine, Program(code.replace("{tmp}", str(tmp_path))))
    assert kind(result) is ErrorKind.RUNTIME
    assert "root:" not in result.error.message  # type: ignore[union-attr]
    assert not (tmp_path / "written.txt").exists()
    assert (tmp_path / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize(
    "code",
    [
        "import socket\nsocket.create_connection(('127.0.0.1', 80))",
        "import urllib.request\nurllib.request.urlopen('http://127.0.0.1/')",
        "import http.client",
        "import ssl",
        "import asyncio\nawait asyncio.open_connection('127.0.0.1', 80)",
    ],
)
async def test_the_code_cannot_reach_the_network(engine: PythonEngine, code: str) -> None:
    result = await contained(engine, Program(code))
    assert kind(result) is ErrorKind.RUNTIME


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.environ['CODEMODE_TEST_SECRET']",
        "import os\nos.getenv('CODEMODE_TEST_SECRET')",
        "import os\ndict(os.environ)",
        "import os\nos.environ.get('PATH')",
    ],
)
async def test_the_code_cannot_read_the_environment(
    engine: PythonEngine, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    monkeypatch.setenv("CODEMODE_TEST_SECRET", "hunter2-env-value")
    result = await contained(engine, Program(code))
    assert "hunter2" not in repr(result)
    assert os.environ["PATH"] not in repr(result)


@pytest.mark.parametrize(
    "code",
    [
        "import subprocess\nsubprocess.run(['id'])",
        "import os\nos.system('id')",
        "import os\nos.kill(1, 9)",
        "import os\nos.getpid()",
        "__import__('os')",
        "import sys\nsys.modules",
        "import sys\nsys.path",
        "import importlib",
        "import ctypes",
        "import multiprocessing",
        "import threading",
        "import signal",
        "().__class__.__base__.__subclasses__()",
        "type(()).__mro__",
        "(lambda: 0).__globals__",
        "(lambda: 0).__code__",
        "codemode.__dict__",
        "codemode.ping.__globals__",
        "print.__self__",
        "eval(\"__import__('os')\")",
        "exec('import subprocess')",
        "globals()['__builtins__']",
        "getattr(codemode, '_RunBridge')",
        "compile('1', 'x', 'eval')",
        "breakpoint()",
    ],
)
async def test_the_code_cannot_reach_the_host_process(engine: PythonEngine, code: str) -> None:
    async def ping(arguments: dict[str, Any]) -> str:
        return "pong"

    result = await contained(engine, Program(code, functions={"ping": ping}))
    assert kind(result) is ErrorKind.RUNTIME
    assert "portico" not in repr(result).lower()


def _monty_workers() -> list[int]:
    """Pids of the monty worker processes this test process started."""
    me, pids = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if comm == "monty" and int(rest[1]) == me:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to inspect the workers")
async def test_a_worker_holds_none_of_the_gateways_environment_files_or_core_dumps(
    engine: PythonEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEMODE_TEST_SECRET", "hunter2-env-value")
    await engine.aclose()  # workers spawned from now on see the variable in the gateway's environment
    seen: dict[str, Any] = {}

    async def inspect(arguments: dict[str, Any]) -> int:
        for pid in _monty_workers():
            proc = Path(f"/proc/{pid}")
            seen[str(pid)] = {
                "environ": (proc / "environ").read_bytes(),
                "cwd": os.readlink(proc / "cwd"),
                "core": [line.split()[4:6] for line in (proc / "limits").read_text().splitlines() if "core" in line],
            }
        return len(seen)

    result = await contained(engine, Program("await codemode.inspect()", functions={"inspect": inspect}))
    assert result.value >= 1
    assert all(w == {"environ": b"", "cwd": "/", "core": [["0", "0"]]} for w in seen.values()), seen


async def test_an_inline_script_dependency_block_installs_nothing(engine: PythonEngine) -> None:
    code = "# /// script\n# dependencies = ['requests']\n# ///\nimport requests"
    result = await contained(engine, Program(code))
    assert kind(result) is ErrorKind.RUNTIME
    assert "ModuleNotFoundError" in result.error.message  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "code",
    [
        "import time\ntime.sleep(3600)",
        "import asyncio\nawait asyncio.sleep(3600)",
        "import asyncio\nawait asyncio.gather(*[asyncio.sleep(3600) for i in range(100)])",
        "import time\nwhile True:\n    time.sleep(0.05)",
    ],
)
async def test_sleeping_cannot_outlast_the_wall_clock(engine: PythonEngine, code: str) -> None:
    result = await contained(engine, Program(code), Limits(cpu_s=0.5, wall_s=1.0))
    assert kind(result) in (ErrorKind.TIMEOUT, ErrorKind.LIMIT)


async def test_nothing_carries_over_from_one_run_to_the_next(engine: PythonEngine) -> None:
    data = {"tools": [{"name": "a"}]}
    first = await contained(
        engine,
        Program(
            "import json\nsecret = 'from-run-1'\ndef helper():\n    return secret\n"
            "tools.append('poison')\n"
            "try:\n    json.dumps = None\nexcept Exception:\n    pass\n"
            "try:\n    codemode.extra = 1\nexcept Exception:\n    pass\n"
            "helper()",
            data=data,
        ),
    )
    second = await contained(
        engine,
        Program(
            "import json\n"
            "names = []\n"
            "try:\n    names.append(secret)\nexcept NameError:\n    pass\n"
            "try:\n    names.append(helper())\nexcept NameError:\n    pass\n"
            "[names, tools, json.dumps([1]), hasattr(codemode, 'extra')]",
            data=data,
        ),
    )
    assert first.value == "from-run-1"
    assert second.value == [[], [{"name": "a"}], "[1]", False]


async def test_many_hostile_runs_at_once_leave_the_engine_serving(engine: PythonEngine) -> None:
    programs = [
        Program("while True:\n    pass"),
        Program("[0] * 10**10"),
        Program("s = 'x'\nwhile True:\n    s = s + s"),
        Program("import time\ntime.sleep(3600)"),
        Program("def f():\n    return f()\nf()"),
        Program("while True:\n    print('x' * 1000)"),
    ]
    results: list[RunResult] = []

    async def one(program: Program) -> None:
        results.append(await engine.run(program, FAST))

    with anyio.fail_after(FAST.wall_s * len(programs) + 10):
        async with anyio.create_task_group() as tg:
            for program in programs:
                tg.start_soon(one, program)
    assert all(not r.ok for r in results)
    after = await engine.run(Program("'still here'"), Limits())
    assert after.value == "still here"

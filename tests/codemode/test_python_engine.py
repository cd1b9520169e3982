"""The Python engine's behaviour for well-meaning code: results, host calls, tool errors, data, logs, type checks."""

from __future__ import annotations

import datetime
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from portico.codemode.engine import EngineUnavailableError, ErrorKind, Limits, Program, RunResult, ToolError
from portico.codemode.python import PythonEngine
from portico.codemode.python.stubs import ToolSpec, build_declarations

pytestmark = pytest.mark.anyio

LIMITS = Limits(cpu_s=2.0, wall_s=5.0)

SEARCH = ToolSpec(
    "notes_search",
    {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "mode": {"enum": ["exact", "fuzzy"]},
            "limit": {"type": "integer"},
        },
        "required": ["query"],
    },
    {"type": "object"},
    "Search notes.",
)
DELETE = ToolSpec("notes_delete", {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]})
DECLARATIONS = build_declarations([SEARCH, DELETE])


class Recorder:
    """Host functions that record what they received."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []

    def functions(self) -> dict[str, Any]:
        async def notes_search(arguments: dict[str, Any]) -> Any:
            self.received.append(("notes_search", arguments))
            return {"hits": [arguments.get("query")], "mode": arguments.get("mode")}

        async def notes_delete(arguments: dict[str, Any]) -> Any:
            self.received.append(("notes_delete", arguments))
            raise ToolError(f"note {arguments.get('id')} is locked")

        return {"notes_search": notes_search, "notes_delete": notes_delete}


@pytest.fixture
async def engine() -> AsyncIterator[PythonEngine]:
    engine = PythonEngine(max_workers=4)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.aclose()


async def run(engine: PythonEngine, code: str, limits: Limits = LIMITS, **program: Any) -> RunResult:
    with anyio.fail_after(limits.wall_s + 5):
        return await engine.run(Program(code, **program), limits)


async def test_the_last_expression_is_the_result(engine: PythonEngine) -> None:
    result = await run(engine, "x = 20\nx * 2 + 2")
    assert result.ok
    assert result.value == 42


async def test_a_top_level_return_is_the_result_even_when_type_checked(engine: PythonEngine) -> None:
    recorder = Recorder()
    code = "r = await codemode.notes_search(query='a')\nreturn r['hits']\n"
    plain = await run(engine, code, functions=recorder.functions())
    checked = await run(engine, code, functions=recorder.functions(), declarations=DECLARATIONS)
    assert (plain.value, checked.value) == (["a"], ["a"])


async def test_code_without_a_final_expression_returns_none(engine: PythonEngine) -> None:
    result = await run(engine, "x = 1")
    assert result.ok
    assert result.value is None


async def test_a_host_function_receives_keyword_arguments_as_one_json_object(engine: PythonEngine) -> None:
    recorder = Recorder()
    code = "await codemode.notes_search(query='q', limit=3, mode=None)"
    result = await run(engine, code, functions=recorder.functions())
    assert result.value == {"hits": ["q"], "mode": None}
    assert recorder.received == [("notes_search", {"query": "q", "limit": 3, "mode": None})]
    assert result.calls == 1


async def test_a_host_function_accepts_one_dict_as_in_javascript(engine: PythonEngine) -> None:
    recorder = Recorder()
    code = "await codemode.notes_search({'query': 'q', 'tags': ('a', 'b')}, limit=1)"
    result = await run(engine, code, functions=recorder.functions(), declarations=None)
    assert result.ok
    assert recorder.received == [("notes_search", {"query": "q", "tags": ["a", "b"], "limit": 1})]


async def test_positional_arguments_other_than_one_dict_are_a_type_error_in_the_code(engine: PythonEngine) -> None:
    recorder = Recorder()
    code = "try:\n    await codemode.notes_search('q')\nexcept TypeError as e:\n    r = str(e)\nr"
    result = await run(engine, code, functions=recorder.functions())
    assert "keyword arguments or one dict" in result.value
    assert recorder.received == []


async def test_gathered_host_calls_run_concurrently(engine: PythonEngine) -> None:
    # each call waits for the other to have started: run one after the other, they would never finish
    started = {"a": anyio.Event(), "b": anyio.Event()}

    async def meet(arguments: dict[str, Any]) -> str:
        me, other = arguments["me"], "b" if arguments["me"] == "a" else "a"
        started[me].set()
        await started[other].wait()
        return me

    code = "await asyncio.gather(codemode.meet(me='a'), codemode.meet(me='b'))"
    result = await run(engine, code, functions={"meet": meet})
    assert result.value == ["a", "b"]
    assert result.calls == 2


async def test_a_caught_tool_error_lets_the_code_continue(engine: PythonEngine) -> None:
    recorder = Recorder()
    code = (
        "try:\n"
        "    await codemode.notes_delete(id='n1')\n"
        "except Exception as e:\n"
        "    failed = str(e)\n"
        "ok = await codemode.notes_search(query='after')\n"
        "[failed, ok['hits']]"
    )
    result = await run(engine, code, functions=recorder.functions())
    assert result.ok
    assert result.value == ["note n1 is locked", ["after"]]
    assert result.calls == 2


async def test_an_uncaught_tool_error_ends_the_run_as_a_tool_error_on_its_line(engine: PythonEngine) -> None:
    recorder = Recorder()
    code = "x = 1\n\nawait codemode.notes_delete(id='n9')\n"
    result = await run(engine, code, functions=recorder.functions())
    assert result.error is not None
    assert result.error.kind is ErrorKind.TOOL
    assert result.error.line == 3
    assert "note n9 is locked" in result.error.message


async def test_a_broken_host_function_shows_the_code_only_a_generic_failure(engine: PythonEngine) -> None:
    async def broken(arguments: dict[str, Any]) -> Any:
        raise KeyError("/srv/portico/secret.key")

    result = await run(engine, "await codemode.broken()", functions={"broken": broken})
    assert result.error is not None
    assert result.error.kind is ErrorKind.TOOL
    assert "secret" not in result.error.message
    assert "tool call failed" in result.error.message


async def test_an_exception_the_code_raises_is_a_runtime_error_on_its_line(engine: PythonEngine) -> None:
    result = await run(engine, "def f(d):\n    return d['missing']\n\nf({})\n")
    assert result.error is not None
    assert result.error.kind is ErrorKind.RUNTIME
    assert result.error.message == "KeyError: missing"
    assert result.error.line == 2


async def test_an_exception_the_code_raises_with_a_tool_errors_message_is_still_a_runtime_error(
    engine: PythonEngine,
) -> None:
    recorder = Recorder()
    code = "try:\n    await codemode.notes_delete(id='n1')\nexcept Exception as e:\n    raise ValueError(str(e))"
    result = await run(engine, code, functions=recorder.functions())
    assert result.error is not None
    assert result.error.kind is ErrorKind.RUNTIME
    assert result.error.message == "ValueError: note n1 is locked"


@pytest.mark.parametrize("declarations", [None, DECLARATIONS])
async def test_a_syntax_error_reports_the_line_in_the_models_code(engine: PythonEngine, declarations: Any) -> None:
    result = await run(engine, "x = 1\ny = [1, 2\nz = 3 +\n", declarations=declarations)
    assert result.error is not None
    assert result.error.kind is ErrorKind.SYNTAX
    assert result.error.message.startswith("SyntaxError: ")
    assert result.error.line in (2, 3)


async def test_data_is_readable_as_module_level_names(engine: PythonEngine) -> None:
    tools = [{"name": "notes_search", "server": "notes"}, {"name": "git_log", "server": "git"}]
    data = {"tools": tools, "servers": [{"id": "notes"}, {"id": "git"}]}
    code = "[t['name'] for t in tools if t['server'] == servers[0]['id']]"
    result = await run(engine, code, data=data)
    assert result.value == ["notes_search"]


async def test_the_code_changing_its_data_leaves_the_hosts_values_alone(engine: PythonEngine) -> None:
    tools = [{"name": "a"}]
    result = await run(engine, "tools.append(1)\ntools[0]['name'] = 'x'\ntools", data={"tools": tools})
    assert result.value == [{"name": "x"}, 1]
    assert tools == [{"name": "a"}]


async def test_data_is_visible_to_the_type_checker(engine: PythonEngine) -> None:
    recorder = Recorder()
    code = "names = [t['name'] for t in tools]\nawait codemode.notes_search(query=names[0])"
    result = await run(engine, code, data={"tools": [{"name": "z"}]}, functions=recorder.functions())
    checked = await run(
        engine, code, data={"tools": [{"name": "z"}]}, functions=recorder.functions(), declarations=DECLARATIONS
    )
    assert result.value == checked.value == {"hits": ["z"], "mode": None}


async def test_print_output_comes_back_as_logs(engine: PythonEngine) -> None:
    result = await run(engine, "import sys\nprint('one', 2)\nprint('err', file=sys.stderr)\n3")
    assert result.value == 3
    assert result.logs == "one 2\nerr\n"
    assert not result.logs_truncated


async def test_logs_beyond_max_log_bytes_are_dropped_and_flagged(engine: PythonEngine) -> None:
    limits = Limits(max_log_bytes=100)
    result = await run(engine, "for i in range(50):\n    print('é' * 9)\n'done'", limits=limits)
    assert result.value == "done"
    assert result.logs_truncated
    assert len(result.logs.encode()) <= 100
    assert result.logs.startswith("ééééééééé\n")


async def test_a_result_over_max_result_bytes_is_a_limit_error(engine: PythonEngine) -> None:
    result = await run(engine, "'x' * 2000", limits=Limits(max_result_bytes=1000))
    assert result.error is not None
    assert result.error.kind is ErrorKind.LIMIT
    assert result.value is None


async def test_tuples_sets_dates_and_dataclasses_come_back_as_json(engine: PythonEngine) -> None:
    code = (
        "import datetime\nfrom dataclasses import dataclass\n"
        "@dataclass\nclass P:\n    x: int\n"
        "{'t': (1, 2), 's': {3}, 'd': datetime.date(2026, 1, 2), 'p': P(4), 1: float('nan'), 'big': 2**70}"
    )
    result = await run(engine, code)
    assert result.value == {
        "t": [1, 2],
        "s": [3],
        "d": datetime.date(2026, 1, 2).isoformat(),
        "p": {"x": 4},
        "1": None,
        "big": str(2**70),
    }


@pytest.mark.parametrize("code", ["b'raw'", "print", "{'k': [b'x']}", "{(1, 2): 3}"])
async def test_a_result_that_is_not_json_is_a_runtime_error(engine: PythonEngine, code: str) -> None:
    result = await run(engine, code)
    assert result.error is not None
    assert result.error.kind is ErrorKind.RUNTIME
    assert "not JSON" in result.error.message


async def test_a_deeply_nested_result_is_refused_without_hurting_the_gateway(engine: PythonEngine) -> None:
    result = await run(engine, "a = []\nfor i in range(50000):\n    a = [a]\na")
    assert result.error is not None
    assert "nested deeper" in result.error.message


@pytest.mark.parametrize(
    ("code", "diagnostic"),
    [
        ("await codemode.notes_search(query='a', mode='regex')", "invalid-argument-type"),
        ("await codemode.notes_search(limit=3)", "no-matching-overload"),
        ("await codemode.notes_serach(query='a')", "unresolved-attribute"),
        ("await codemode.notes_search(query='a', limt=3)", "no-matching-overload"),
    ],
)
async def test_the_type_check_rejects_bad_calls_before_any_host_call(
    engine: PythonEngine, code: str, diagnostic: str
) -> None:
    recorder = Recorder()
    code = "before = await codemode.notes_search(query='first')\n" + code
    result = await run(engine, code, functions=recorder.functions(), declarations=DECLARATIONS)
    assert result.error is not None
    assert result.error.kind is ErrorKind.TYPE
    assert result.error.line == 2
    assert diagnostic in result.error.message
    assert recorder.received == []
    assert result.calls == 0


async def test_the_type_check_accepts_the_keyword_and_the_dict_forms(engine: PythonEngine) -> None:
    recorder = Recorder()
    code = (
        "a = await codemode.notes_search(query='a', mode='exact', limit=2)\n"
        "b = await codemode.notes_search({'query': 'b'})\n"
        "c, d = await asyncio.gather(codemode.notes_search(query='c'), codemode.notes_search(query='d'))\n"
        "[x['hits'][0] for x in (a, b, c, d)]"
    )
    result = await run(engine, code, functions=recorder.functions(), declarations=DECLARATIONS)
    assert result.value == ["a", "b", "c", "d"]


async def test_declarations_from_varied_schemas_accept_valid_calls(engine: PythonEngine) -> None:
    specs = [
        ToolSpec(
            "kitchen_sink",
            {
                "type": "object",
                "properties": {
                    "when": {"type": "string", "format": "date-time"},
                    "kind": {"enum": ["a", 1, True, None]},
                    "tags": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "nested": {"$ref": "#/$defs/N"},
                    "never": False,
                    "ratio": {"type": "number"},
                    "user-id": {"type": "integer"},
                },
                "required": ["when"],
                "$defs": {"N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}}},
            },
            {"type": "object", "additionalProperties": {"type": "integer"}},
            'A tool with """ quotes and \\ backslashes.',
        ),
        ToolSpec("free_form", {"type": "object"}),
        ToolSpec("no_args", {"type": "object", "properties": {}}),
    ]
    received: list[dict[str, Any]] = []

    async def record(arguments: dict[str, Any]) -> Any:
        received.append(arguments)
        return {"n": 1}

    code = (
        "a = await codemode.kitchen_sink(when='2026-01-01', kind=True, tags=['x', 2], nested={'n': {}}, ratio=1)\n"
        "b = await codemode.kitchen_sink({'when': 'x', 'user-id': 8})\n"
        "c = await codemode.free_form(anything=[1], goes={'x': None})\n"
        "d = await codemode.no_args()\n"
        "a['n'] + b['n']"
    )
    functions = {"kitchen_sink": record, "free_form": record, "no_args": record}
    result = await run(engine, code, functions=functions, declarations=build_declarations(specs))
    assert result.value == 2
    assert len(received) == 4


async def test_markdown_fences_around_the_code_are_ignored_and_lines_kept(engine: PythonEngine) -> None:
    ok = await run(engine, "```python\nx = 2\nx + 1\n```\n")
    failed = await run(engine, "```python\nx = 2\n1 / 0\n```")
    assert ok.value == 3
    assert failed.error is not None
    assert failed.error.line == 3


@pytest.mark.parametrize(
    "program",
    [
        Program("1", functions={"_hidden": lambda a: a}),  # type: ignore[dict-item]
        Program("1", functions={"has-dash": lambda a: a}),  # type: ignore[dict-item]
        Program("1", data={"codemode": 1}),
        Program("1", data={"class": 1}),
    ],
)
async def test_names_the_code_could_not_use_are_refused(engine: PythonEngine, program: Program) -> None:
    with pytest.raises(ValueError, match="name"):
        await engine.run(program, LIMITS)


async def test_an_engine_without_its_worker_binary_is_unavailable(tmp_path: Path) -> None:
    engine = PythonEngine(binary_path=str(tmp_path / "monty"))
    with pytest.raises(EngineUnavailableError):
        await engine.start()
    with pytest.raises(EngineUnavailableError):
        await engine.run(Program("1"), LIMITS)


async def test_a_run_starts_the_pool_on_demand_and_after_close() -> None:
    engine = PythonEngine()
    try:
        first = await engine.run(Program("1"), LIMITS)
        await engine.aclose()
        second = await engine.run(Program("2"), LIMITS)
    finally:
        await engine.aclose()
    assert (first.value, second.value) == (1, 2)


async def test_a_run_finding_every_worker_busy_is_a_limit_error() -> None:
    engine = PythonEngine(max_workers=1, checkout_timeout_s=0.2)
    release = anyio.Event()
    entered = anyio.Event()

    async def hold(arguments: dict[str, Any]) -> int:
        entered.set()
        await release.wait()
        return 1

    try:
        async with anyio.create_task_group() as tg:
            results: list[Any] = []

            async def holder() -> None:
                results.append(await engine.run(Program("await codemode.hold()", functions={"hold": hold}), LIMITS))

            tg.start_soon(holder)
            with anyio.fail_after(5):
                await entered.wait()
            busy = await engine.run(Program("1"), LIMITS)
            release.set()
        after = await engine.run(Program("2"), LIMITS)
    finally:
        await engine.aclose()
    assert busy.error is not None
    assert busy.error.kind is ErrorKind.LIMIT
    assert "busy" in busy.error.message
    assert results[0].value == 1
    assert after.value == 2


async def test_a_cancelled_run_releases_its_worker(engine: PythonEngine) -> None:
    with anyio.move_on_after(0.3):
        await engine.run(Program("while True:\n    pass"), Limits(cpu_s=30, wall_s=30))
    after = await run(engine, "'next'")
    assert after.value == "next"


async def test_closing_the_engine_ends_the_runs_in_flight() -> None:
    engine = PythonEngine()
    entered = anyio.Event()

    async def hang(arguments: dict[str, Any]) -> None:
        entered.set()
        await anyio.sleep_forever()

    results: list[RunResult] = []

    async def one(program: Program) -> None:
        results.append(await engine.run(program, Limits(cpu_s=30, wall_s=30)))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, Program("await codemode.hang()", functions={"hang": hang}))
            tg.start_soon(one, Program("while True:\n    pass"))
            await entered.wait()
            await engine.aclose()
    assert [r.error.kind if r.error else None for r in results] == [ErrorKind.CRASHED, ErrorKind.CRASHED]


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


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the worker processes")
async def test_a_worker_killed_mid_run_is_a_crash_and_the_engine_keeps_serving(engine: PythonEngine) -> None:
    async def kill_workers(arguments: dict[str, Any]) -> int:
        for pid in _monty_workers():
            os.kill(pid, signal.SIGKILL)
        await anyio.sleep(0.2)
        return 1

    result = await run(engine, "await codemode.kill_workers()\n1", functions={"kill_workers": kill_workers})
    after = await run(engine, "'alive'")
    assert result.error is not None
    assert result.error.kind is ErrorKind.CRASHED
    assert after.value == "alive"

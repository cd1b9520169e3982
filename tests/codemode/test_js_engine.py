"""The JavaScript engine's behaviour for well-meaning code: values, host calls, errors, logs, data, code forms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from portico.codemode.engine import ErrorKind, Limits, Program, RunResult, ToolError
from portico.codemode.js import JsEngine
from portico.codemode.js.engine import strip_fences

pytestmark = pytest.mark.anyio

LIMITS = Limits(cpu_s=2.0, wall_s=5.0)


@pytest.fixture
async def engine() -> AsyncIterator[JsEngine]:
    engine = JsEngine(warm_workers=2, max_workers=4)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.aclose()


async def echo(args: dict[str, Any]) -> Any:
    return {"got": args}


async def refuse(args: dict[str, Any]) -> Any:
    raise ToolError("the ticket is closed")


async def run(engine: JsEngine, code: str, limits: Limits = LIMITS, **program: Any) -> RunResult:
    with anyio.fail_after(limits.wall_s + 5):
        return await engine.run(Program(code=code, **program), limits)


def value(result: RunResult) -> Any:
    assert result.error is None, result.error
    return result.value


# ------------------------------------------------------------------------------------------------ values


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("42", 42),
        ("1.5", 1.5),
        ("-0.25e3", -250),
        ("'text'", "text"),
        ("'naïve ✓ 🙂'", "naïve ✓ 🙂"),
        ("true", True),
        ("false", False),
        ("null", None),
        ("undefined", None),
        ("[1, 'a', null, [true]]", [1, "a", None, [True]]),
        ("({a: {b: [1, 2]}, c: 'd'})", {"a": {"b": [1, 2]}, "c": "d"}),
        ("new Date(0)", "1970-01-01T00:00:00.000Z"),
        ("NaN", None),
        ("[undefined, () => 1]", [None, None]),
        ("({f() {}, u: undefined, n: 1})", {"n": 1}),
        ("new Map([[1, 2]])", {}),
        ("2 ** 64", 18446744073709551616),
        ("({toJSON() { return 'custom' }})", "custom"),
    ],
)
async def test_the_result_is_the_json_value_of_what_the_code_returns(engine: JsEngine, code: str, expected: Any):
    result = await run(engine, code)
    assert value(result) == expected
    assert result.calls == 0


async def test_a_value_json_cannot_express_is_a_runtime_error(engine: JsEngine):
    result = await run(engine, "const o = {}; o.self = o; o")
    assert result.error is not None
    assert result.error.kind is ErrorKind.RUNTIME
    assert "not JSON" in result.error.message
    bigint = await run(engine, "10n ** 30n")
    assert bigint.error is not None
    assert bigint.error.kind is ErrorKind.RUNTIME


async def test_a_result_larger_than_the_limit_is_a_limit_error(engine: JsEngine):
    result = await run(engine, "'x'.repeat(5000)", Limits(max_result_bytes=4096))
    assert result.error is not None
    assert result.error.kind is ErrorKind.LIMIT
    fits = await run(engine, "'x'.repeat(4000)", Limits(max_result_bytes=4096))
    assert value(fits) == "x" * 4000


# ------------------------------------------------------------------------------------------------ host functions


async def test_a_host_function_gets_the_arguments_and_its_result_comes_back(engine: JsEngine):
    seen: list[dict[str, Any]] = []

    async def record(args: dict[str, Any]) -> Any:
        seen.append(args)
        return {"items": [1, 2, 3], "query": args.get("q")}

    result = await run(
        engine,
        "const r = await codemode.search_notes({q: 'ünïcode', n: 2, nested: {ok: true}})\n"
        "r.items.length + ':' + r.query",
        functions={"search_notes": record},
    )
    assert value(result) == "3:ünïcode"
    assert seen == [{"q": "ünïcode", "n": 2, "nested": {"ok": True}}]
    assert result.calls == 1


async def test_a_call_without_arguments_passes_an_empty_object(engine: JsEngine):
    result = await run(engine, "await codemode.echo()", functions={"echo": echo})
    assert value(result) == {"got": {}}


@pytest.mark.parametrize("args", ["'text'", "[1, 2]", "null", "42", "{}, {}"])
async def test_anything_but_one_object_argument_is_a_type_error_before_the_call(engine: JsEngine, args: str):
    seen: list[Any] = []

    async def record(arguments: dict[str, Any]) -> Any:
        seen.append(arguments)
        return None

    result = await run(engine, f"await codemode.tool({args})", functions={"tool": record})
    assert result.error is not None
    assert result.error.kind is ErrorKind.RUNTIME
    assert "TypeError" in result.error.message
    assert seen == []


async def test_promise_all_runs_host_calls_concurrently(engine: JsEngine):
    started = 0
    both_started = anyio.Event()

    async def rendezvous(args: dict[str, Any]) -> Any:
        nonlocal started
        started += 1
        if started == 2:
            both_started.set()
        with anyio.fail_after(3):  # only returns once the other call is in flight too
            await both_started.wait()
        return args["i"]

    result = await run(
        engine,
        "await Promise.all([codemode.meet({i: 1}), codemode.meet({i: 2})])",
        functions={"meet": rendezvous},
    )
    assert value(result) == [1, 2]
    assert result.calls == 2


async def test_a_tool_error_can_be_caught_by_the_code(engine: JsEngine):
    code = """
try {
  await codemode.close_ticket({id: 7})
  return 'closed'
} catch (error) {
  return [error.name, error.message, error instanceof Error]
}
"""
    result = await run(engine, code, functions={"close_ticket": refuse})
    assert value(result) == ["ToolError", "the ticket is closed", True]
    assert result.calls == 1


async def test_an_uncaught_tool_error_ends_the_run_as_a_tool_error_with_its_line(engine: JsEngine):
    code = "const a = 1\nconst b = await codemode.echo({})\nawait codemode.close_ticket({id: b})\nreturn a"
    result = await run(engine, code, functions={"close_ticket": refuse, "echo": echo})
    assert result.error is not None
    assert result.error.kind is ErrorKind.TOOL
    assert result.error.message == "ToolError: the ticket is closed"
    assert result.error.line == 3
    assert result.calls == 2


async def test_a_host_function_bug_reaches_the_code_as_a_failed_call_without_internals(engine: JsEngine):
    async def broken(args: dict[str, Any]) -> Any:
        raise KeyError("/srv/portico/secret/path")

    result = await run(
        engine, "try { await codemode.broken({}) } catch (e) { return e.message }", functions={"broken": broken}
    )
    assert value(result) == "the tool failed (internal error)"


async def test_a_host_function_result_that_is_not_json_is_a_failed_call(engine: JsEngine):
    async def odd(args: dict[str, Any]) -> Any:
        return {1, 2}

    result = await run(engine, "await codemode.odd({})", functions={"odd": odd})
    assert result.error is not None
    assert result.error.kind is ErrorKind.TOOL


# ------------------------------------------------------------------------------------------------ errors


async def test_a_syntax_error_is_reported_with_the_line_of_the_models_code(engine: JsEngine):
    result = await run(engine, "const a = 1\nconst b = 2\nconst c = (a +\n\nconsole.log(c)")
    assert result.error is not None
    assert result.error.kind is ErrorKind.SYNTAX
    assert result.error.message.startswith("SyntaxError:")
    assert result.error.line == 5


async def test_a_syntax_error_line_counts_the_fence_the_model_wrote(engine: JsEngine):
    result = await run(engine, "```js\nconst a = 1\nlet a = 2\n```")
    assert result.error is not None
    assert result.error.kind is ErrorKind.SYNTAX
    assert result.error.line == 3


async def test_an_unclosed_block_is_a_syntax_error_on_a_line_of_the_code(engine: JsEngine):
    result = await run(engine, "function f() {\n  return 1\n")
    assert result.error is not None
    assert result.error.kind is ErrorKind.SYNTAX
    assert result.error.line in (2, 3)


async def test_a_thrown_error_is_a_runtime_error_with_its_line(engine: JsEngine):
    result = await run(engine, "const o = null\n\nfunction f() {\n  return o.x\n}\nf()")
    assert result.error is not None
    assert result.error.kind is ErrorKind.RUNTIME
    assert result.error.message == "TypeError: Cannot read properties of null (reading 'x')"
    assert result.error.line == 4


async def test_a_thrown_non_error_value_is_a_runtime_error(engine: JsEngine):
    result = await run(engine, "throw {code: 7}")
    assert result.error is not None
    assert result.error.kind is ErrorKind.RUNTIME
    assert result.error.message == 'Uncaught {"code":7}'


# ------------------------------------------------------------------------------------------------ logs


async def test_console_output_is_captured(engine: JsEngine):
    code = (
        "console.log('a', 1, {b: [2]}, null)\nconsole.error(new TypeError('bad'))\nconsole.warn('w'); console.info('i')"
    )
    result = await run(engine, code)
    assert result.logs == 'a 1 {"b":[2]} null\nTypeError: bad\nw\ni\n'
    assert result.logs_truncated is False


async def test_console_output_is_cut_at_the_byte_limit_and_marked_truncated(engine: JsEngine):
    result = await run(
        engine, "for (let i = 0; i < 1000; i++) console.log('é'.repeat(10)); 'done'", Limits(max_log_bytes=1001)
    )
    assert value(result) == "done"
    assert result.logs_truncated is True
    assert len(result.logs.encode()) <= 1001
    assert result.logs.startswith("é" * 10 + "\n")
    assert len(result.logs.encode()) >= 1000


async def test_console_output_up_to_the_limit_is_not_truncated(engine: JsEngine):
    result = await run(engine, "console.log('x'.repeat(99))", Limits(max_log_bytes=100))
    assert result.logs == "x" * 99 + "\n"
    assert result.logs_truncated is False


async def test_logs_written_before_an_error_are_kept(engine: JsEngine):
    result = await run(
        engine, "console.log('step 1')\nawait codemode.close_ticket({})", functions={"close_ticket": refuse}
    )
    assert result.error is not None
    assert result.error.kind is ErrorKind.TOOL
    assert result.logs == "step 1\n"


# ------------------------------------------------------------------------------------------------ data


async def test_data_values_are_read_only_globals(engine: JsEngine):
    tools = [{"name": "notes__search", "description": "Search notes"}, {"name": "crm__get", "description": "CRM"}]
    code = "tools.filter(t => t.name.startsWith('notes')).map(t => t.description).concat([servers.length])"
    result = await run(engine, code, data={"tools": tools, "servers": ["notes", "crm"]})
    assert value(result) == ["Search notes", 2]

    frozen = await run(engine, "tools.push({name: 'evil'})", data={"tools": tools})
    assert frozen.error is not None
    assert frozen.error.kind is ErrorKind.RUNTIME
    rebound = await run(engine, "'use strict'; tools = []", data={"tools": tools})
    assert rebound.error is not None
    assert rebound.error.kind is ErrorKind.RUNTIME


async def test_a_data_key_that_cannot_be_a_global_is_refused_before_running(engine: JsEngine):
    with pytest.raises(ValueError, match="data key"):
        await engine.run(Program(code="1", data={"not-an-identifier": 1}), LIMITS)
    with pytest.raises(ValueError, match="data key"):
        await engine.run(Program(code="1", data={"codemode": 1}), LIMITS)


async def test_codemode_lists_exactly_the_programs_functions(engine: JsEngine):
    result = await run(
        engine,
        "[Object.keys(codemode), typeof codemode.nope, Object.isFrozen(codemode)]",
        functions={"a_tool": echo, "b_tool": echo},
    )
    assert value(result) == [["a_tool", "b_tool"], "undefined", True]


# ------------------------------------------------------------------------------------------------ code forms


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("1 + 2", 3),
        ("async () => { return 5 }", 5),
        ("async () => 6", 6),
        ("() => 7", 7),
        ("async function main() {\n  return 8\n}", 8),
        ("return 9", 9),
        ("const a = 5\na * 2", 10),
        ("const a = 4;\na * 3;", 12),
        ("const x = 1\nx + 1 // and a comment", 2),
        ("const x = 3;\nx; // done\n/* really */\n", 3),
        ("```javascript\nconst a = [1, 2, 3]\na.map(x => x * 2)\n```", [2, 4, 6]),
        ("```\n[1]\n```", [1]),
        ("export default async () => 11", 11),
        ("let total = 1\n  + 2", None),
        ("const f = (x) => x * 2\nf(21)", 42),
        ("{a: 1}", {"a": 1}),
        ("const o = {a: 1};\n({...o, b: 2})", {"a": 1, "b": 2}),
        ("if (true) {\n  'x'\n}", None),
        ("for (const x of [1]) {}\n'after'", "after"),
        ("const r = [1, 2, 3]\n  .map(x => x + 1)\n  .filter(x => x > 2)", None),
        ("const r = [1, 2, 3]\nr\n  .map(x => x + 1)\n  .filter(x => x > 2)", [3, 4]),
        ("let n = 0\nfor (let i = 0; i < 4; i++) n += i\nn", 6),
        ("async function main() {\n  return 12\n}\nmain()", 12),
        ("const big = 2 > 1\n  ? 'yes'\n  : 'no'\nbig", "yes"),
        ("", None),
        ("// only a comment", None),
        ("'use strict'\nconst a = 1\na", 1),
        ("label: for (;;) { break label }\n13", 13),
        ("const s = `multi\nline ${1 + 1}`\ns", "multi\nline 2"),
        ("const re = /a;b\\n/\nre.source", "a;b\\n"),
    ],
)
async def test_the_code_may_be_an_expression_a_function_or_statements_ending_in_an_expression(
    engine: JsEngine, code: str, expected: Any
):
    assert value(await run(engine, code)) == expected


async def test_awaiting_host_calls_works_in_every_form(engine: JsEngine):
    forms = [
        "await codemode.echo({v: 1})",
        "async () => await codemode.echo({v: 1})",
        "const r = await codemode.echo({v: 1})\nr",
        "return await codemode.echo({v: 1})",
    ]
    for code in forms:
        assert value(await run(engine, code, functions={"echo": echo})) == {"got": {"v": 1}}


@pytest.mark.parametrize(
    ("code", "expected", "offset"),
    [
        ("1", "1", 0),
        ("```js\n1\n```", "1", 1),
        ("\n\n```js\n1\n```\n", "1", 3),
        ("```\n```", "", 1),
    ],
)
def test_markdown_fences_are_stripped_and_counted(code: str, expected: str, offset: int):
    body, lines = strip_fences(code)
    assert body.strip() == expected
    assert lines == offset


# ------------------------------------------------------------------------------------------------ runtime


async def test_set_timeout_works_within_the_run(engine: JsEngine):
    code = "await new Promise(resolve => setTimeout(resolve, 20)); 'later'"
    assert value(await run(engine, code)) == "later"


async def test_the_runtime_leaves_no_handle_for_the_code(engine: JsEngine):
    result = await run(engine, "[typeof __portico_run, typeof hostCall, typeof ToolError, typeof console.log]")
    assert value(result) == ["undefined", "undefined", "undefined", "function"]


async def test_runs_report_cpu_and_wall_time(engine: JsEngine):
    result = await run(engine, "let x = 0; for (let i = 0; i < 1e6; i++) x += i; x")
    assert value(result) == 499999500000
    assert result.wall_s > 0
    assert result.cpu_s >= 0


async def test_concurrent_runs_each_get_their_own_result(engine: JsEngine):
    results: dict[int, Any] = {}

    async def one(i: int) -> None:
        results[i] = value(
            await run(engine, f"const r = await codemode.echo({{i: {i}}})\nr.got.i * 10", functions={"echo": echo})
        )

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(one, i)
    assert results == {i: i * 10 for i in range(6)}


async def test_one_worker_serves_back_to_back_runs_each_in_a_fresh_isolate():
    engine = JsEngine(warm_workers=1, max_workers=1)
    await engine.start()
    try:
        pid = engine.pool.idle_workers()[0].pid
        for i in range(20):
            result = await run(engine, f"globalThis.n = (globalThis.n ?? 0) + {i}\nn", functions={"echo": echo})
            assert value(result) == i
        assert engine.pool.idle_workers()[0].pid == pid
    finally:
        await engine.aclose()


async def test_a_worker_is_replaced_after_max_runs():
    engine = JsEngine(warm_workers=1, max_workers=1, max_runs_per_worker=2)
    await engine.start()
    try:
        first = engine.pool.idle_workers()[0].pid
        for _ in range(2):
            assert value(await run(engine, "1")) == 1
        assert value(await run(engine, "2")) == 2
        assert engine.pool.idle_workers()[0].pid != first
    finally:
        await engine.aclose()


async def test_a_worker_is_replaced_after_a_run_that_failed(engine: JsEngine):
    failing = engine.pool.idle_workers()[0].pid  # idle workers are handed out oldest first
    result = await run(engine, "throw new Error('x')")
    assert result.error is not None
    assert failing not in {worker.pid for worker in engine.pool.idle_workers()}
    stats = engine.pool.stats()
    assert stats["idle"] + stats["starting"] == 2
    assert value(await run(engine, "'still serving'")) == "still serving"

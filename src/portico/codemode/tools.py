"""The two tools a Code Mode caller sees, in the flavour of the engine that runs their code.

Kept short on purpose: the whole point is that the tool list costs the same few hundred tokens whether the
caller may use four tools or four hundred (bench/codemode_tokens.py measures it). Everything else — names,
descriptions and typed signatures of the real tools — the model fetches with `search` when it needs it.
"""

from __future__ import annotations

from typing import Any

from portico.codemode.settings import CodeModeLimits, CodeModeNames, EngineName

_SEARCH = {
    "javascript": (
        "Find the tools you can call. Write JavaScript (statements or an async arrow function; the last expression "
        "is the result) that runs in a sandbox without network or files. `tools` is an array of {{name, server, "
        "title, description, inputSchema, annotations}}; `await codemode.search({{query, limit}})` ranks tools by "
        "keywords; `await codemode.describe({{name}})` gives one tool's TypeScript signature. Return only what you "
        'need, e.g. `(await codemode.search({{query: "open tickets"}})).map(t => t.name)`.'
    ),
    "python": (
        "Find the tools you can call. Write Python (the last expression is the result) that runs in a sandbox "
        "without network or files. `tools` is a list of dicts {{name, server, title, description, inputSchema, "
        "annotations}}; `await codemode.search(query=..., limit=...)` ranks tools by keywords; `await "
        "codemode.describe(name=...)` gives one tool's Python signature. Return only what you need, e.g. "
        "`[t['name'] for t in await codemode.search(query='open tickets')]`."
    ),
}
_EXECUTE = {
    "javascript": (
        "Call tools by writing JavaScript that runs in a sandbox (no network, files or environment). Each tool you "
        'can call is an async function taking one object: `await codemode.notes__add_note({{title: "x"}})`; find '
        "names and argument types with `{search}` first. Use Promise.all for independent calls, filter big results "
        "in code, and return only what is needed (the last expression, or `return`). A failed tool throws an Error "
        "you can catch; console.log output comes back as logs; the reply lists the calls that completed. Limits: "
        "{wall:g} s, {calls} tool calls; a reply over ~6,000 tokens is cut."
    ),
    "python": (
        "Call tools by writing Python that runs in a sandbox (no network, files or environment). Each tool you can "
        "call is an async function with keyword arguments: `await codemode.notes__add_note(title='x')`; find names "
        "and argument types with `{search}` first. Use asyncio.gather for independent calls, filter big results in "
        "code, and return only what is needed (the last expression). A failed tool raises an exception you can "
        "catch; print() output comes back as logs; the reply lists the calls that completed. Limits: {wall:g} s, "
        "{calls} tool calls; a reply over ~6,000 tokens is cut."
    ),
}
_LANGUAGE = {"javascript": "JavaScript", "python": "Python"}


def codemode_tools(
    engine: EngineName, names: CodeModeNames | None = None, limits: CodeModeLimits | None = None
) -> list[dict[str, Any]]:
    """The `tools/list` entries of Code Mode for `engine`."""
    names = names or CodeModeNames()
    limits = limits or CodeModeLimits()
    language = _LANGUAGE[engine]

    def code_schema(what: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"code": {"type": "string", "description": f"{language} {what}"}},
            "required": ["code"],
            "additionalProperties": False,
        }

    return [
        {
            "name": names.search,
            "description": _SEARCH[engine].format(),
            "inputSchema": code_schema("that inspects `tools` and returns what you need"),
            "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
        },
        {
            "name": names.execute,
            "description": _EXECUTE[engine].format(search=names.search, wall=limits.wall_s, calls=limits.max_calls),
            "inputSchema": code_schema("that calls tools on `codemode` and returns the result"),
            "annotations": {"readOnlyHint": False, "destructiveHint": True, "openWorldHint": True},
        },
    ]

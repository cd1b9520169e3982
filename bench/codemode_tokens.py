"""Code Mode token benchmark: what a caller's `tools/list` costs natively and in Code Mode, by catalog size.

Catalogs come from bench/codemode_catalog.py: synthetic but shaped like real MCP servers (GitHub, Slack, Jira,
Stripe, ...), about 13 tools per server from per-resource templates plus product-specific actions, with
multi-sentence descriptions, nested objects, enums, arrays, `$defs`, some output schemas and annotations;
deterministic. Sizes: 4, 10, 40 and 100 servers, i.e. 52, 130, 520 and 1,300 tools: the 52-tool row is
Cloudflare's published example (4 servers, ~9,400 tokens), the 520-tool row the ">= 500 tools" target.

Counted with `portico.codemode.tokens` (cl100k_base, offline) over the `tools` array serialized as Portico
sends it (compact JSON, UTF-8). Per size, for each engine:

* native: every tool of the catalog;
* Code Mode: the two tools `portico.codemode.tools.codemode_tools(engine)` returns (`search`, `execute`);
* the TypeScript declarations of the whole catalog (what a single-`code`-tool design would put up front), and
  the mean `describe()` answer for one tool per engine (TypeScript declaration, Python stub): what the model
  pays for each tool it looks up in Code Mode.

Targets printed beside the numbers: Code Mode <= 600 tokens and the same at every size; >= 95% fewer tokens
than native at 52 tools; >= 99% at >= 500 tools.

    .venv/bin/python bench/codemode_tokens.py                 # needs portico.codemode.tools
    .venv/bin/python bench/codemode_tokens.py --provisional   # the provisional definitions in this script
    .venv/bin/python bench/codemode_tokens.py --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from codemode_catalog import build_catalog  # bench/ is on sys.path when this script runs

from portico.codemode.python.stubs import ToolSpec, build_stub, python_name
from portico.codemode.tokens import ENCODING, count_tokens, count_tool_list
from portico.codemode.typescript import ToolSignature, declarations, describe_tool, js_identifiers

SERVER_COUNTS = (4, 10, 40, 100)
ENGINES = ("javascript", "python")
TARGET_CODEMODE_MAX = 600
TARGET_REDUCTION = ((52, 0.95), (500, 0.99))  # (at least this many tools, at least this reduction)

JSON = dict[str, Any]


# -- the Code Mode side --------------------------------------------------------------------------------------

# PROVISIONAL: a copy of the proposed definitions (shared notes §D2; the JavaScript pair adapted from the Python
# one), used only with --provisional until `portico.codemode.tools` exists. Not Portico's definitions.
_ANNOTATIONS_SEARCH = {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False}
_ANNOTATIONS_EXECUTE = {"readOnlyHint": False, "destructiveHint": True, "openWorldHint": True}
PROVISIONAL: dict[str, list[JSON]] = {
    "javascript": [
        {
            "name": "search",
            "description": "Find the gateway tools you can call. Write JavaScript (runs in a sandbox, no I/O). "
            "`tools` is an array of {name, server, title, description, inputSchema, outputSchema, annotations}; "
            "`servers` lists {id, name, toolCount}; `describe(name)` returns the TypeScript declaration + docs of "
            "one tool. End with an expression (or `return`): it is returned as JSON, truncated at ~6,000 "
            "tokens.\nExample:\ntools.filter(t => t.name.includes('issue')).map(t => ({name: t.name, "
            "description: t.description})).slice(0, 20)",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "JavaScript that inspects `tools` and ends with the value to return",
                    }
                },
                "required": ["code"],
                "additionalProperties": False,
            },
            "annotations": _ANNOTATIONS_SEARCH,
        },
        {
            "name": "execute",
            "description": "Run JavaScript that calls gateway tools. Use `search` first. Every tool is an async "
            "function on the `codemode` object that takes one object: `await codemode.github__list_issues({owner: "
            "'acme', repo: 'api'})`. Use `Promise.all([...])` for independent calls, filter big results in code, "
            "and return only what is needed (last expression or `return`). A failed tool throws an Error you can "
            "catch. console.log() output is returned as logs. No network/files/env; limits: 60 s, 64 MB, 50 tool "
            "calls; output truncated at ~6,000 tokens.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "JavaScript that awaits codemode.<tool>({...}) calls and returns a result",
                    }
                },
                "required": ["code"],
                "additionalProperties": False,
            },
            "annotations": _ANNOTATIONS_EXECUTE,
        },
    ],
    "python": [
        {
            "name": "search",
            "description": "Find the gateway tools you can call. Write Python (runs in a sandbox, no I/O). `tools` "
            "is a list of dicts {name, server, title, description, input_schema, output_schema, annotations}; "
            "`servers` lists {id, name, tool_count}; `describe(name)` returns the Python signature + docs of one "
            "tool. End with an expression (or `return`) — it is returned as JSON, truncated at ~6,000 tokens.\n"
            "Example:\n[{'name': t['name'], 'description': t['description']} for t in tools if 'issue' in "
            "t['name']][:20]",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "Python that inspects `tools` and ends with the value to return",
                    }
                },
                "required": ["code"],
                "additionalProperties": False,
            },
            "annotations": _ANNOTATIONS_SEARCH,
        },
        {
            "name": "execute",
            "description": "Run Python that calls gateway tools. Use `search` first. Every tool is an async function "
            "on the `codemode` module: `await codemode.github_list_issues(owner='acme', repo='api')` (keyword "
            "args, or one dict). Use `asyncio.gather(...)` for independent calls, filter big results in code, and "
            "return only what is needed (last expression or `return`). A failed tool raises an exception you can "
            "catch. print() output is returned as logs. No network/files/env; limits: 60 s, 64 MB, 50 tool calls; "
            "output truncated at ~6,000 tokens.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "Python code that awaits codemode.<tool>(...) calls and returns a result",
                    }
                },
                "required": ["code"],
                "additionalProperties": False,
            },
            "annotations": _ANNOTATIONS_EXECUTE,
        },
    ],
}


def codemode_definitions(provisional: bool) -> tuple[Callable[[str], list[JSON]], str]:
    """How to get the two Code Mode tools per engine, and a label saying where they come from."""
    if provisional:
        return (lambda engine: PROVISIONAL[engine]), "PROVISIONAL definitions copied into bench/codemode_tokens.py"
    try:
        from portico.codemode.tools import codemode_tools
    except ImportError as exc:
        sys.exit(
            f"bench/codemode_tokens.py: cannot import portico.codemode.tools.codemode_tools ({exc}).\n"
            "Code Mode's tool definitions are not in Portico yet. Run with --provisional to measure the\n"
            "provisional copy in this script instead (clearly labelled in the output)."
        )
    return (lambda engine: list(codemode_tools(engine))), "portico.codemode.tools.codemode_tools"


# -- measuring ------------------------------------------------------------------------------------------------


def signatures(catalog: list[JSON]) -> list[ToolSignature]:
    names = js_identifiers(tool["name"] for tool in catalog)
    return [
        ToolSignature(
            names[tool["name"]],
            tool.get("description", ""),
            tool.get("inputSchema", {}),
            tool.get("outputSchema"),
            tool.get("annotations"),
        )
        for tool in catalog
    ]


def stubs(catalog: list[JSON]) -> list[ToolSpec]:
    return [
        ToolSpec(python_name(t["name"]), t.get("inputSchema", {}), t.get("outputSchema"), t.get("description", ""))
        for t in catalog
    ]


def measure(servers: int, definitions: Callable[[str], list[JSON]]) -> JSON:
    catalog = build_catalog(servers)
    native = count_tool_list(catalog)
    per_tool = [count_tool_list([tool]) - 2 for tool in catalog]  # less the list's own brackets
    sigs = signatures(catalog)
    row: JSON = {
        "servers": servers,
        "tools": len(catalog),
        "native_tokens": native,
        "mean_tokens_per_tool": round(statistics.fmean(per_tool), 1),
        "typescript_declarations_tokens": count_tokens(declarations(sigs)),
        "mean_describe_tokens": {
            "javascript": round(statistics.fmean(count_tokens(describe_tool(s)) for s in sigs), 1),
            "python": round(statistics.fmean(count_tokens(build_stub(spec)) for spec in stubs(catalog)), 1),
        },
        "codemode": {},
    }
    for engine in ENGINES:
        tokens = count_tool_list(definitions(engine))
        row["codemode"][engine] = {"tokens": tokens, "reduction": round(1 - tokens / native, 4)}
    return row


def verdicts(rows: list[JSON]) -> list[tuple[str, bool]]:
    checks: list[tuple[str, bool]] = []
    for engine in ENGINES:
        sizes = [row["codemode"][engine]["tokens"] for row in rows]
        checks.append((f"{engine}: Code Mode <= {TARGET_CODEMODE_MAX} tokens", max(sizes) <= TARGET_CODEMODE_MAX))
        checks.append((f"{engine}: Code Mode flat across sizes ({min(sizes)}-{max(sizes)})", len(set(sizes)) == 1))
        for at_least, reduction in TARGET_REDUCTION:
            row = next((r for r in rows if r["tools"] >= at_least), None)
            if row is None:
                continue
            got = row["codemode"][engine]["reduction"]
            checks.append(
                (f"{engine}: >= {reduction:.0%} fewer tokens at {row['tools']} tools (got {got:.2%})", got >= reduction)
            )
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--provisional", action="store_true", help="measure the provisional copy in this script")
    parser.add_argument("--servers", type=int, action="append", help=f"default: {SERVER_COUNTS}")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    definitions, source = codemode_definitions(args.provisional)
    rows = [measure(n, definitions) for n in args.servers or SERVER_COUNTS]
    checks = verdicts(rows)
    meta = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "encoding": ENCODING, "codemode_tools": source}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows, "targets": dict(checks)}, indent=2))
        return
    print(f"Code Mode tokens — {meta['when']}, {ENCODING} (cl100k), tools array as compact JSON")
    print(f"Code Mode tools: {source}")
    header = f"{'servers':>7} {'tools':>6} {'native':>8} {'per tool':>8} {'TS decl':>8}"
    header += "".join(f" {engine[:2] + ' CM':>6} {'saved':>7} {engine[:2] + ' desc':>7}" for engine in ENGINES)
    print(header)
    for row in rows:
        line = (
            f"{row['servers']:>7} {row['tools']:>6} {row['native_tokens']:>8,} {row['mean_tokens_per_tool']:>8}"
            f" {row['typescript_declarations_tokens']:>8,}"
        )
        for engine in ENGINES:
            cm = row["codemode"][engine]
            line += f" {cm['tokens']:>6} {cm['reduction']:>7.2%} {row['mean_describe_tokens'][engine]:>7}"
        print(line)
    largest = rows[-1]
    print(
        "native: the portal's tools/list; per tool: mean tokens of one tool definition; TS decl: TypeScript\n"
        "declarations of every tool; ja/py CM: the two Code Mode tools per engine; saved: 1 - CM/native;\n"
        "ja/py desc: mean tokens of describe() for one tool (TypeScript declaration / Python stub)"
    )
    print(f"mean tokens per tool: {largest['mean_tokens_per_tool']} over the {largest['tools']}-tool catalog")
    print("targets:")
    for label, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}")
    if args.provisional:
        print("NOTE: Code Mode figures are for the PROVISIONAL definitions in this script, not Portico's.")


if __name__ == "__main__":
    main()

"""JSON Schema → TypeScript: the type table, `$ref`s, declarations, tool identifiers, and declarations that the
TypeScript compiler accepts (tools/node/bin/tsc, pinned in tools/package.json)."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from portico.codemode.typescript import (
    MAX_DEPTH,
    MAX_LITERALS,
    IdentifierCollisionError,
    ToolSignature,
    declarations,
    describe_tool,
    js_identifier,
    js_identifiers,
    typescript_type,
)
from tests.upstreams.launch import REPO_ROOT

TSC = REPO_ROOT / "tools" / "node" / "bin" / "tsc"


def nested_arrays(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    return schema


OBJECT = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
OBJECT_TS = "{\n  a: string;\n}"

# Every row of the conversion table in the module docstring.
CASES: list[tuple[Any, str]] = [
    # booleans and the empty schema
    (True, "unknown"),
    (False, "never"),
    ({}, "unknown"),
    ({"description": "anything"}, "unknown"),
    # simple types
    ({"type": "string"}, "string"),
    ({"type": "string", "format": "date-time"}, "string"),
    ({"type": "integer"}, "number"),
    ({"type": "number"}, "number"),
    ({"type": "boolean"}, "boolean"),
    ({"type": "null"}, "null"),
    ({"type": "frobnicate"}, "unknown"),
    # type arrays and OpenAPI nullable
    ({"type": ["string", "null"]}, "string | null"),
    ({"type": ["integer", "number"]}, "number"),
    ({"type": ["array", "null"], "items": {"type": "integer"}}, "number[] | null"),
    ({"type": "string", "nullable": True}, "string | null"),
    ({"enum": ["a", "b"], "nullable": True}, '"a" | "b" | null'),
    # enum and const: literals, JSON-escaped
    ({"enum": ["open", "closed"]}, '"open" | "closed"'),
    ({"type": "string", "enum": ["a"]}, '"a"'),
    ({"enum": [1, 2.5, -3, True, None]}, "1 | 2.5 | -3 | true | null"),
    ({"enum": ['say "hi"', "back\\slash", "line\nbreak"]}, r'"say \"hi\"" | "back\\slash" | "line\nbreak"'),
    ({"enum": ["é", "a\u2028b"]}, '"é" | "a\\u2028b"'),
    ({"enum": [{"a": 1}, [1]]}, "Record<string, unknown> | unknown[]"),
    ({"enum": []}, "never"),
    ({"enum": ["a", "a"]}, '"a"'),
    ({"enum": [f"v{i}" for i in range(MAX_LITERALS + 1)]}, "string"),
    ({"enum": [*range(MAX_LITERALS), "x"]}, "number | string"),
    ({"const": "fixed"}, '"fixed"'),
    ({"const": None}, "null"),
    ({"const": False}, "false"),
    ({"const": 7}, "7"),
    ({"const": {"a": 1}}, "Record<string, unknown>"),
    # anyOf / oneOf: unions; allOf: intersections
    ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, "string | number"),
    ({"oneOf": [{"type": "string"}, {"type": "null"}]}, "string | null"),
    ({"anyOf": [{"const": "a"}, {"const": "b"}, {"type": "null"}]}, '"a" | "b" | null'),
    ({"anyOf": [{"type": "string"}, {}]}, "unknown"),
    ({"anyOf": [{"type": "string"}, {"type": "string"}]}, "string"),
    ({"anyOf": [{"type": "string"}, False]}, "string"),
    ({"allOf": [{"type": "string"}, {"minLength": 1}]}, "string"),
    (
        {"allOf": [OBJECT, {"type": "object", "properties": {"b": {"type": "integer"}}}]},
        OBJECT_TS + " & {\n  b?: number;\n}",
    ),
    ({"allOf": [{"anyOf": [{"type": "string"}, {"type": "null"}]}, {"type": "string"}]}, "(string | null) & string"),
    ({"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}, "Record<string, unknown>"),
    ({"type": "integer", "anyOf": [{"const": 1}, {"const": 2}]}, "number & (1 | 2)"),
    ({"allOf": [{"type": "string"}, False]}, "never"),
    # arrays: `items`, the union precedence fix (#2308), tuples
    ({"type": "array", "items": {"type": "string"}}, "string[]"),
    ({"type": "array"}, "unknown[]"),
    ({"type": "array", "items": True}, "unknown[]"),
    ({"type": "array", "items": False}, "[]"),
    ({"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, "Array<string | null>"),
    ({"type": "array", "items": {"type": ["string", "integer"]}}, "Array<string | number>"),
    ({"type": "array", "items": {"enum": ["a", "b"]}}, 'Array<"a" | "b">'),
    (
        {"type": "array", "items": {"allOf": [OBJECT, {"type": "object", "properties": {"b": {"type": "integer"}}}]}},
        "Array<" + OBJECT_TS + " & {\n  b?: number;\n}>",
    ),
    ({"type": "array", "items": {"type": "array", "items": {"type": "number"}}}, "number[][]"),
    ({"type": "array", "items": {"type": "array", "items": {"enum": [1, 2]}}}, "Array<1 | 2>[]"),
    ({"type": "array", "items": OBJECT}, OBJECT_TS + "[]"),
    ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}, "[string, number]"),
    ({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "boolean"}}, "[string, ...boolean[]]"),
    ({"type": "array", "prefixItems": [{"type": "string"}], "items": False}, "[string]"),
    ({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}, "[string, number]"),
    (
        {"type": "array", "items": [{"type": "string"}], "additionalItems": {"type": ["string", "null"]}},
        "[string, ...Array<string | null>]",
    ),
    ({"items": {"type": "string"}}, "string[]"),
    # objects: optional unless required, quoted keys, index signatures
    (OBJECT, OBJECT_TS),
    ({"properties": {"a": {}}}, "{\n  a?: unknown;\n}"),
    ({"type": "object", "properties": {"a": True}, "required": ["a", "missing"]}, "{\n  a: unknown;\n}"),
    (
        {
            "type": "object",
            "properties": {
                "user-id": {"type": "string"},
                "1st": {"type": "integer"},
                "a b": {"type": "boolean"},
                'say "x"': {"type": "null"},
                "class": {"type": "string"},
                "$ref": {"type": "string"},
            },
        },
        '{\n  "user-id"?: string;\n  "1st"?: number;\n  "a b"?: boolean;\n  "say \\"x\\""?: null;\n'
        "  class?: string;\n  $ref?: string;\n}",
    ),
    (
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True},
        "{\n  a?: string;\n  [key: string]: unknown;\n}",
    ),
    (
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}},
        "{\n  a?: string;\n} & Record<string, number>",
    ),
    (
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"enum": [1, 2]}},
        "{\n  a?: string;\n} & Record<string, 1 | 2>",
    ),
    ({"type": "object"}, "Record<string, unknown>"),
    ({"type": "object", "properties": {}}, "Record<string, unknown>"),
    ({"type": "object", "additionalProperties": False}, "{}"),
    ({"type": "object", "properties": {}, "additionalProperties": False}, "{}"),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, "Record<string, number>"),
    ({"type": "object", "patternProperties": {"^x-": {"type": "string"}}}, "Record<string, string>"),
    ({"type": ["object", "string"]}, "Record<string, unknown> | string"),
    (
        {"type": "object", "properties": {"o": {"type": "object", "properties": {"p": {"type": "integer"}}}}},
        "{\n  o?: {\n    p?: number;\n  };\n}",
    ),
    # property documentation; `*/` cannot end the comment
    (
        {"type": "object", "properties": {"a": {"type": "string", "description": "Ends */ here.\n  Two  lines."}}},
        "{\n  /** Ends *\\/ here. Two lines. */\n  a?: string;\n}",
    ),
    (
        {"type": "object", "properties": {"a": {"type": "string", "format": "uri", "default": "x"}}},
        '{\n  /** @format uri @default "x" */\n  a?: string;\n}',
    ),
    (
        {"type": "object", "properties": {"a": {"title": "The A", "type": "string"}}},
        "{\n  /** The A */\n  a?: string;\n}",
    ),
    # depth: nesting of 20 and more ends in unknown
    (nested_arrays(MAX_DEPTH - 1), "string" + "[]" * (MAX_DEPTH - 1)),
    (nested_arrays(MAX_DEPTH), "unknown" + "[]" * MAX_DEPTH),
    (nested_arrays(MAX_DEPTH + 5), "unknown" + "[]" * MAX_DEPTH),
]


@pytest.mark.parametrize(("schema", "expected"), CASES)
def test_a_schema_becomes_this_typescript_type(schema: Any, expected: str) -> None:
    assert typescript_type(schema) == expected


ROOT: dict[str, Any] = {
    "$defs": {
        "State": {"enum": ["open", "closed"]},
        "Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}},
        "List": {"type": "array", "items": {"$ref": "#/$defs/List"}},
        "a/b": {"type": "integer"},
        "t~x": {"type": "boolean"},
        "Alias": {"$ref": "#/$defs/State"},
        "Loop1": {"$ref": "#/$defs/Loop2"},
        "Loop2": {"$ref": "#/$defs/Loop1"},
    },
    "definitions": {"Old": {"type": "number"}},
}


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("#/$defs/State", '"open" | "closed"'),
        ("#/$defs/Node", "{\n  next?: unknown;\n}"),  # a cycle ends in unknown
        ("#/$defs/List", "unknown[]"),
        ("#/$defs/a~1b", "number"),  # JSON pointer escapes
        ("#/$defs/t~0x", "boolean"),
        ("#/%24defs/State", '"open" | "closed"'),  # percent-encoded
        ("#/$defs/Alias", '"open" | "closed"'),
        ("#/$defs/Loop1", "unknown"),
        ("#/definitions/Old", "number"),
        ("#/$defs/Missing", "unknown"),
        ("https://example.com/schema.json#/x", "unknown"),  # external refs are not fetched
        ("other.json", "unknown"),
    ],
)
def test_a_local_ref_resolves_against_the_root(ref: str, expected: str) -> None:
    assert typescript_type({"$ref": ref}, root=ROOT) == expected


def test_a_ref_fan_out_stops_expanding_instead_of_growing_exponentially() -> None:
    defs = {
        f"L{i}": {"type": "object", "properties": {f"p{j}": {"$ref": f"#/$defs/L{i + 1}"} for j in range(4)}}
        for i in range(MAX_DEPTH)
    }
    rendered = typescript_type({"$ref": "#/$defs/L0", "$defs": defs})
    assert len(rendered) < 2_000_000
    assert "unknown" in rendered


ISSUES = ToolSignature(
    name="github_list_issues",
    description="List issues in a repository.\n\nNewest first. Pull requests are not issues.",
    input_schema={
        "type": "object",
        "properties": {
            "owner": {"type": "string", "description": "The account owner."},
            "repo": {"$ref": "#/$defs/Repo"},
            "state": {"type": "string", "enum": ["open", "closed", "all"], "default": "open"},
            "labels": {"type": "array", "items": {"type": "string"}, "description": "Only  these\nlabels."},
            "since": {"type": "string", "format": "date-time"},
        },
        "required": ["owner", "repo"],
        "$defs": {"Repo": {"type": "string", "description": "The repository."}},
    },
    output_schema={
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"number": {}}}}},
        "required": ["items"],
    },
    annotations={"title": "List issues", "readOnlyHint": True, "openWorldHint": True},
)


def test_declarations_render_types_and_one_documented_codemode_member_per_tool() -> None:
    # top-level properties are documented once, as the member's @params; nested ones in their object type
    ping = ToolSignature("ping", "", {"type": "object", "properties": {}}, None, {"title": "Ping the server"})
    assert declarations([ISSUES, ping]) == (
        "type GithubListIssuesInput = {\n"
        "  owner: string;\n"
        "  repo: string;\n"
        '  state?: "open" | "closed" | "all";\n'
        "  labels?: string[];\n"
        "  since?: string;\n"
        "};\n"
        "type GithubListIssuesOutput = {\n"
        "  items: {\n"
        "    number?: unknown;\n"
        "  }[];\n"
        "};\n"
        "\n"
        "type PingInput = Record<string, unknown>;\n"
        "type PingOutput = unknown;\n"
        "\n"
        "declare const codemode: {\n"
        "  /**\n"
        "   * List issues in a repository.\n"
        "   *\n"
        "   * Newest first. Pull requests are not issues.\n"
        "   *\n"
        "   * Hints: read-only.\n"
        "   *\n"
        "   * @param input.owner - The account owner.\n"
        "   * @param input.repo - The repository.\n"
        '   * @param input.state - @default "open"\n'
        "   * @param input.labels - Only these labels.\n"
        "   * @param input.since - @format date-time\n"
        "   */\n"
        "  github_list_issues: (input: GithubListIssuesInput) => Promise<GithubListIssuesOutput>;\n"
        "  /**\n"
        "   * Ping the server\n"
        "   */\n"
        "  ping: (input: PingInput) => Promise<PingOutput>;\n"
        "};\n"
    )


def test_describe_shows_one_tools_types_and_member() -> None:
    described = describe_tool(ISSUES)
    assert described.startswith("type GithubListIssuesInput = {\n")
    assert "github_list_issues: (input: GithubListIssuesInput) => Promise<GithubListIssuesOutput>;" in described
    assert described == declarations([ISSUES])


@pytest.mark.parametrize(
    ("annotations", "hints"),
    [
        ({"readOnlyHint": True, "destructiveHint": True, "idempotentHint": True}, "read-only, idempotent"),
        ({"destructiveHint": True}, "destructive"),
        (
            {"destructiveHint": True, "idempotentHint": True, "openWorldHint": False},
            "destructive, idempotent, closed world",
        ),
        ({"readOnlyHint": False, "destructiveHint": False, "openWorldHint": True}, None),
        (None, None),
    ],
)
def test_tool_annotations_become_one_hints_line(annotations: dict[str, Any] | None, hints: str | None) -> None:
    rendered = declarations([ToolSignature("t", "Does things.", {"type": "object"}, None, annotations)])
    expected = f"   * Hints: {hints}.\n" if hints else None
    assert (expected in rendered) if expected else ("Hints:" not in rendered)


@pytest.mark.parametrize(
    "description",
    ["Closes */ a comment", "/* opens one", "Control\x00\x07 chars\r\nand CRLF", "line\u2028separator", "  ", ""],
)
def test_any_description_stays_inside_its_comment(description: str) -> None:
    nested = {
        "type": "object",
        "description": description,
        "properties": {"a": {"type": "string", "description": description}},
    }
    tool = ToolSignature("t", description, {"type": "object", "properties": {"o": nested}})
    rendered = declarations([tool])
    for part in rendered.split("/**")[1:]:
        comment, _, rest = part.partition("*/")
        assert "*/" not in comment
        assert rest.lstrip().startswith(("a?: string;", "t: (input"))
    assert not any(ch in rendered for ch in "\x00\x07\r\u2028")


def test_top_level_properties_are_documented_as_params_and_nested_ones_in_their_type() -> None:
    schema = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "Search text."},
            "filter": {
                "type": "object",
                "description": "Narrow it.",
                "properties": {"kind": {"type": "string", "description": "A kind."}},
            },
        },
    }
    rendered = declarations([ToolSignature("find", "Find things.", schema)])
    assert (
        "type FindInput = {\n  query?: string;\n  filter?: {\n    /** A kind. */\n    kind?: string;\n  };\n};"
        in rendered
    )
    assert "   * @param input.query - Search text.\n   * @param input.filter - Narrow it.\n" in rendered
    assert rendered.count("Search text.") == 1


def test_pascal_type_names_stay_distinct_when_identifiers_differ_only_in_underscores() -> None:
    rendered = declarations([ToolSignature("a_b"), ToolSignature("aB"), ToolSignature("_3d_print")])
    assert "type ABInput = unknown;" in rendered
    assert "type AB2Input = unknown;" in rendered
    assert "type _3dPrintInput = unknown;" in rendered
    assert "aB: (input: AB2Input) => Promise<AB2Output>;" in rendered


@pytest.mark.parametrize("name", ["my-tool", "1st", "delete", "a.b", "", "has space"])
def test_declarations_refuse_a_name_that_is_not_a_sanitised_identifier(name: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        declarations([ToolSignature(name)])


def test_declarations_refuse_two_tools_of_one_name() -> None:
    with pytest.raises(ValueError, match="two tools"):
        declarations([ToolSignature("echo"), ToolSignature("echo")])


@pytest.mark.parametrize(
    ("name", "identifier"),
    [
        ("github_list_issues", "github_list_issues"),
        ("my-server_get-data", "my_server_get_data"),
        ("docs.search", "docs_search"),
        ("send message\tnow", "send_message_now"),
        ("weird!@#name", "weirdname"),
        ("café_menu", "caf_menu"),
        ("3d_print", "_3d_print"),
        ("delete", "delete_"),
        ("await", "await_"),
        ("null", "null_"),
        ("Delete", "Delete"),
        ("$price", "$price"),
        ("_private", "_private"),
        ("!!!", "_"),
        ("", "_"),
    ],
)
def test_a_tool_name_becomes_a_javascript_identifier(name: str, identifier: str) -> None:
    assert js_identifier(name) == identifier


def test_a_catalog_maps_every_name_to_its_identifier_in_order() -> None:
    assert js_identifiers(["files_read-file", "files_list.dir", "class"]) == {
        "files_read-file": "files_read_file",
        "files_list.dir": "files_list_dir",
        "class": "class_",
    }


@pytest.mark.parametrize(
    ("names", "identifier", "first", "second"),
    [
        (["git_log", "files_read-file", "files_read.file"], "files_read_file", "files_read-file", "files_read.file"),
        (["delete", "delete_"], "delete_", "delete", "delete_"),
        (["a b", "a-b"], "a_b", "a b", "a-b"),
        (["echo", "echo"], "echo", "echo", "echo"),
    ],
)
def test_two_names_that_collide_are_refused_naming_both(
    names: list[str], identifier: str, first: str, second: str
) -> None:
    with pytest.raises(IdentifierCollisionError) as caught:
        js_identifiers(names)
    assert (caught.value.identifier, caught.value.first, caught.value.second) == (identifier, first, second)
    assert first in str(caught.value)
    assert second in str(caught.value)


# -- validity: the TypeScript compiler accepts what we generate ------------------------------------------------


def realistic_tools() -> list[ToolSignature]:
    """Tool definitions shaped like real servers', with the awkward parts real servers have."""
    block = {
        "oneOf": [
            {
                "type": "object",
                "properties": {"type": {"const": "section"}, "text": {"type": "string"}},
                "required": ["type", "text"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"type": {"const": "divider"}},
                "required": ["type"],
                "additionalProperties": False,
            },
        ]
    }
    adf: dict[str, Any] = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "content": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                    "attrs": {"type": "object", "additionalProperties": True},
                    "marks": {"type": "array", "items": {"$ref": "#/$defs/mark"}},
                },
                "required": ["type"],
            },
            "mark": {"type": "object", "properties": {"type": {"enum": ["strong", "em", "link"]}}},
        },
        "type": "object",
        "properties": {"issue-key": {"type": "string", "pattern": "^[A-Z]+-\\d+$"}, "body": {"$ref": "#/$defs/node"}},
        "required": ["issue-key", "body"],
    }
    return [
        ISSUES,
        ToolSignature(
            js_identifier("slack_post-message"),
            "Post a message to a channel. Blocks override `text` in clients that render them.",
            {
                "type": "object",
                "properties": {
                    "channel": {"type": "string", "description": "Channel ID, e.g. C024BE91L."},
                    "text": {"type": "string"},
                    "blocks": {"type": "array", "items": block, "maxItems": 50},
                    "thread_ts": {"type": ["string", "null"]},
                    "metadata": {
                        "type": "object",
                        "properties": {"event_type": {"type": "string"}},
                        "additionalProperties": {"type": "string"},
                    },
                },
                "required": ["channel"],
                "additionalProperties": False,
            },
            {"type": "object", "properties": {"ok": {"type": "boolean"}, "ts": {"type": "string"}}},
            {"destructiveHint": False, "openWorldHint": True},
        ),
        ToolSignature(
            "postgres_query",
            "Run a read-only SQL query. Parameters bind to $1, $2, ...",
            {
                "type": "object",
                "properties": {
                    "sql": {"type": "string"},
                    "params": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]},
                    },
                    "range": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "integer"}]},
                    "row_mode": {"enum": ["array", "object"], "nullable": True},
                },
                "required": ["sql"],
            },
            {
                "type": "object",
                "properties": {
                    "rows": {"type": "array", "items": {"type": ["array", "object"]}},
                    "fields": {"type": "array", "items": [{"type": "string"}], "additionalItems": {"type": "string"}},
                },
            },
            {"readOnlyHint": True},
        ),
        ToolSignature(
            js_identifier("delete"),
            "Delete a file. */ This comment cannot end early. /* nor open another",
            {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "Absolute path */ evil"},
                    "dry-run": {"type": "boolean", "default": False},
                    "class": {"type": "string"},
                    'quote"key': {"type": "string"},
                    "back\\slash": {"type": "string"},
                    "new\nline": {"type": "string"},
                    "emoji 🚀": {"type": "string"},
                    "sep\u2028ar": {"enum": ["x\u2028y", "a'b", 'c"d', "`e`", "${f}"]},
                },
                "required": ["path", 'quote"key'],
            },
            None,
            {"destructiveHint": True, "idempotentHint": True},
        ),
        ToolSignature(js_identifier("jira_add-comment"), "Add a comment in Atlassian Document Format.", adf),
        ToolSignature(
            "search_everything",
            "",
            {
                "type": "object",
                "properties": {
                    "filters": {
                        "allOf": [
                            {"type": "object", "properties": {"kind": {"type": "string"}}},
                            {"anyOf": [{"required": ["kind"]}, {"type": "object", "properties": {"q": {}}}]},
                        ]
                    },
                    "deep": nested_arrays(MAX_DEPTH + 3),
                    "never": False,
                    "anything": True,
                    "empty_enum": {"enum": []},
                    "consts": {"anyOf": [{"const": {"a": 1}}, {"const": [1]}, {"const": 1.5}]},
                    "closed": {"type": "object", "additionalProperties": False},
                    "patterned": {"type": "object", "patternProperties": {"^x": {"type": "integer"}}},
                },
            },
            {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "number"}}},
        ),
        ToolSignature(js_identifier("a_b"), "", {"type": "object"}),
        ToolSignature(js_identifier("aB"), "", {"type": "object"}),
        ToolSignature(js_identifier("3d-print"), "Print.", {"type": "object", "properties": {"x": {"type": "number"}}}),
    ]


ALPHABET = ["a", "Z", "_", "$", "0", "-", " ", '"', "'", "\\", "\n", "*/", "/*", "`", "${", "é", "🚀", "\u2028", "\x00"]


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 6)))


def random_schema(rng: random.Random, depth: int = 0) -> Any:
    """An arbitrary schema (valid or not) of every keyword the converter reads, with hostile strings."""
    if depth > 4 or rng.random() < 0.15:
        return rng.choice([True, False, {}, {"type": rng.choice(["string", "integer", "null", "bogus"])}])
    kind = rng.randrange(9)
    if kind == 0:
        return {
            "enum": [
                rng.choice([random_text(rng), rng.randint(-5, 5), 1.25, None, True, [1], {"k": 1}])
                for _ in range(rng.randint(0, 4))
            ]
        }
    if kind == 1:
        return {"const": rng.choice([random_text(rng), 3, None, False])}
    if kind in (2, 3):
        key = rng.choice(["anyOf", "oneOf", "allOf"])
        return {key: [random_schema(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if kind == 4:
        schema: dict[str, Any] = {"type": "array"}
        if rng.random() < 0.5:
            schema["prefixItems"] = [random_schema(rng, depth + 1) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.7:
            schema["items"] = random_schema(rng, depth + 1)
        return schema
    if kind == 5:
        return {"type": [rng.choice(["string", "array", "object", "null", "number"]) for _ in range(2)]}
    if kind == 6:
        return {"$ref": rng.choice(["#", "#/properties/x", "#/$defs/nope", "http://x/y"])}
    schema = {"type": "object", "properties": {}}
    for _ in range(rng.randint(0, 4)):
        prop = random_schema(rng, depth + 1)
        if isinstance(prop, dict) and rng.random() < 0.5:
            prop = {**prop, "description": random_text(rng), "default": random_text(rng)}
        schema["properties"][random_text(rng)] = prop
    schema["required"] = [k for k in schema["properties"] if rng.random() < 0.5]
    extra = rng.choice([None, True, False, {"type": "string"}, {"anyOf": [{"type": "string"}, {"type": "null"}]}])
    if extra is not None:
        schema["additionalProperties"] = extra
    if rng.random() < 0.2:
        schema["nullable"] = True
    return schema


def arbitrary_tools(count: int, seed: int) -> list[ToolSignature]:
    rng = random.Random(seed)
    names = js_identifiers(f"{random_text(rng)}tool{i}{random_text(rng)}" for i in range(count))
    tools = []
    for name in names.values():
        schema = random_schema(rng)
        if isinstance(schema, dict) and rng.random() < 0.5:
            schema["$defs"] = {"x": random_schema(rng)}
        tools.append(ToolSignature(name, random_text(rng), schema if isinstance(schema, dict) else {}))
    return tools


def compile_typescript(tmp_path: Path, files: dict[str, str]) -> str:
    if not TSC.exists():
        pytest.fail("Node toolchain missing: run tools/install-node.sh (./dev test does)")
    for name, source in files.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    completed = subprocess.run(
        [str(TSC), "--noEmit", "--strict", "--pretty", "false", "--target", "es2022", "--lib", "es2022", *files],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return completed.stdout + completed.stderr


@pytest.mark.node
def test_declarations_for_real_looking_tools_compile_and_type_their_calls(tmp_path: Path) -> None:
    usage = """
async function main(): Promise<void> {
  const issues = await codemode.github_list_issues({ owner: "acme", repo: "api", state: "closed" });
  const first: { number?: unknown } | undefined = issues.items[0];
  await codemode.slack_post_message({ channel: "C1", blocks: [{ type: "section", text: "hi" }, { type: "divider" }] });
  await codemode.postgres_query({ sql: "select $1", params: ["a", 1, null], range: [0, 10] });
  await codemode.delete_({ path: "/tmp/x", "quote\\"key": "q", "dry-run": true });
  await codemode.jira_add_comment({ "issue-key": "A-1", body: { type: "doc", content: [{ type: "text" }] } });
  await codemode._3d_print({ x: 1 });
  // @ts-expect-error: the state enum does not admit "merged"
  await codemode.github_list_issues({ owner: "acme", repo: "api", state: "merged" });
  // @ts-expect-error: repo is required
  await codemode.github_list_issues({ owner: "acme" });
  // @ts-expect-error: a block is a section or a divider
  await codemode.slack_post_message({ channel: "C1", blocks: [{ type: "image" }] });
  // @ts-expect-error: no such tool
  await codemode.github_list_issue({ owner: "acme", repo: "api" });
  void first;
}
void main;
"""
    output = compile_typescript(tmp_path, {"catalog.ts": declarations(realistic_tools()) + usage})
    assert output == ""


@pytest.mark.node
def test_every_table_row_and_arbitrary_schemas_compile(tmp_path: Path) -> None:
    aliases = "".join(f"type Case{i} = {typescript_type(schema)};\n" for i, (schema, _) in enumerate(CASES))
    aliases += "".join(
        f"type Ref{i} = {typescript_type({'$ref': ref}, root=ROOT)};\n"
        for i, ref in enumerate(["#/$defs/Node", "#/$defs/List", "#/$defs/Loop1"])
    )
    files = {"cases.ts": aliases + "export {};\n"}
    for seed in range(4):
        files[f"arbitrary{seed}.ts"] = declarations(arbitrary_tools(60, seed)) + "export {};\n"
    files["described.ts"] = "".join(describe_tool(tool) for tool in realistic_tools()[:1]) + "export {};\n"
    output = compile_typescript(tmp_path, files)
    assert output == "", output[:4000]

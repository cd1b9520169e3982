"""JSON Schema → Python stubs: the type table, parameters, docstrings, names, and stubs Monty's checker accepts."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from portico.codemode.python.stubs import (
    MAX_LITERALS,
    ToolSpec,
    build_declarations,
    build_stub,
    python_name,
    python_type,
)

DEEP: dict[str, Any] = {"type": "string"}
for _ in range(12):
    DEEP = {"type": "array", "items": DEEP}


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        # booleans and the empty schema
        (True, "Any"),
        (False, "Never"),
        ({}, "Any"),
        ({"description": "anything"}, "Any"),
        # simple types
        ({"type": "string"}, "str"),
        ({"type": "string", "format": "date-time"}, "str"),
        ({"type": "integer"}, "int"),
        ({"type": "number"}, "float"),
        ({"type": "boolean"}, "bool"),
        ({"type": "null"}, "None"),
        ({"type": "frobnicate"}, "Any"),
        # type arrays and nullable
        ({"type": ["string", "null"]}, "str | None"),
        ({"type": ["integer", "number"]}, "int | float"),
        ({"type": ["array", "null"], "items": {"type": "integer"}}, "list[int] | None"),
        ({"type": "string", "nullable": True}, "str | None"),
        # enum and const
        ({"enum": ["open", "closed"]}, 'Literal["open", "closed"]'),
        ({"type": "string", "enum": ["a"]}, 'Literal["a"]'),
        ({"enum": [1, 2, True, None]}, "Literal[1, 2, True] | None"),
        ({"enum": ['say "hi"', "back\\slash", "line\nbreak"]}, r'Literal["say \"hi\"", "back\\slash", "line\nbreak"]'),
        ({"enum": ["é"]}, r'Literal["\u00e9"]'),
        ({"enum": [1.5, "x"]}, 'Literal["x"] | float'),
        ({"enum": [{"a": 1}, [1]]}, "dict[str, Any] | list[Any]"),
        ({"enum": []}, "Never"),
        ({"enum": ["a", "a"]}, 'Literal["a"]'),
        ({"enum": [f"v{i}" for i in range(MAX_LITERALS + 1)]}, "str"),
        ({"enum": [*range(MAX_LITERALS), "x"]}, "int | str"),
        ({"const": "fixed"}, 'Literal["fixed"]'),
        ({"const": None}, "None"),
        ({"const": False}, "Literal[False]"),
        # anyOf / oneOf / allOf
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, "str | int"),
        ({"oneOf": [{"type": "string"}, {"type": "null"}]}, "str | None"),
        ({"anyOf": [{"const": "a"}, {"const": "b"}, {"type": "null"}]}, 'Literal["a", "b"] | None'),
        ({"anyOf": [{"type": "string"}, {}]}, "Any"),
        ({"anyOf": [{"type": "string"}, {"type": "string"}]}, "str"),
        ({"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}, "dict[str, Any]"),
        ({"allOf": [{"type": "string"}, {"minLength": 1}]}, "str"),
        ({"allOf": [{"type": "object", "properties": {}}, {"properties": {"a": {}}}]}, "dict[str, Any]"),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "Any"),
        ({"type": "integer", "allOf": [{"type": "string"}, {"type": "boolean"}]}, "int"),
        # arrays
        ({"type": "array", "items": {"type": "string"}}, "list[str]"),
        ({"type": "array"}, "list[Any]"),
        ({"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, "list[str | None]"),
        ({"type": "array", "items": {"enum": ["a", "b"]}}, 'list[Literal["a", "b"]]'),
        ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}, "list[str | int]"),
        (
            {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "boolean"}},
            "list[str | bool]",
        ),
        ({"type": "array", "prefixItems": [{"type": "string"}], "items": False}, "list[str]"),
        ({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}, "list[str | int]"),
        ({"type": "array", "items": {"type": "array", "items": {"type": "number"}}}, "list[list[float]]"),
        ({"items": {"type": "string"}}, "list[str]"),
        # objects
        ({"type": "object"}, "dict[str, Any]"),
        ({"type": "object", "properties": {"a": {"type": "string"}}}, "dict[str, Any]"),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, "dict[str, int]"),
        ({"type": "object", "additionalProperties": False}, "dict[str, Any]"),
        ({"properties": {"a": {}}}, "dict[str, Any]"),
        ({"type": ["object", "string"]}, "dict[str, Any] | str"),
        # depth
        (DEEP, "list[list[list[list[list[list[list[list[list[Any]]]]]]]]]"),
    ],
)
def test_a_schema_becomes_this_python_type(schema: Any, expected: str) -> None:
    assert python_type(schema) == expected


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
        ("#/$defs/State", 'Literal["open", "closed"]'),
        ("#/$defs/Node", "dict[str, Any]"),
        ("#/$defs/List", "list[Any]"),  # a cycle ends in Any
        ("#/$defs/a~1b", "int"),  # JSON pointer escapes
        ("#/$defs/t~0x", "bool"),
        ("#/%24defs/State", 'Literal["open", "closed"]'),  # percent-encoded
        ("#/$defs/Alias", 'Literal["open", "closed"]'),
        ("#/$defs/Loop1", "Any"),
        ("#/definitions/Old", "float"),
        ("#/$defs/Missing", "Any"),
        ("https://example.com/schema.json#/x", "Any"),  # external refs are not fetched
        ("other.json", "Any"),
    ],
)
def test_a_local_ref_resolves_against_the_root(ref: str, expected: str) -> None:
    assert python_type({"$ref": ref}, root=ROOT) == expected


def test_a_ref_inside_an_array_resolves() -> None:
    schema = {"type": "array", "items": {"$ref": "#/$defs/State"}}
    assert python_type(schema, root=ROOT) == 'list[Literal["open", "closed"]]'


ISSUES = ToolSpec(
    name="github_list_issues",
    description="List issues in a repository.\n\nNewest first.",
    input_schema={
        "type": "object",
        "properties": {
            "state": {"type": "string", "enum": ["open", "closed", "all"], "default": "open"},
            "owner": {"type": "string", "description": "The account owner."},
            "labels": {"type": "array", "items": {"type": "string"}, "description": "Only  these\nlabels."},
            "since": {"type": "string", "format": "date-time"},
            "repo": {"$ref": "#/$defs/Repo"},
        },
        "required": ["owner", "repo"],
        "$defs": {"Repo": {"type": "string", "description": "The repository."}},
    },
    output_schema={"type": "object", "properties": {"items": {"type": "array"}}},
)


def test_a_stub_lists_required_parameters_first_and_documents_them() -> None:
    assert build_stub(ISSUES) == (
        "async def github_list_issues(\n"
        "    *,\n"
        "    owner: str,\n"
        "    repo: str,\n"
        '    state: Literal["open", "closed", "all"] | None = None,\n'
        "    labels: list[str] | None = None,\n"
        "    since: str | None = None,\n"
        ") -> dict[str, Any]:\n"
        '    """List issues in a repository.\n'
        "\n"
        "    Newest first.\n"
        "\n"
        "    Args:\n"
        '        state: Default: "open".\n'
        "        owner: The account owner.\n"
        "        labels: Only these labels.\n"
        "        since: Format: date-time.\n"
        "        repo: The repository.\n"
        '    """\n'
    )


def test_a_short_signature_stays_on_one_line() -> None:
    spec = ToolSpec("echo", {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})
    assert build_stub(spec) == "async def echo(*, text: str) -> Any: ...\n"


@pytest.mark.parametrize(
    ("schema", "signature"),
    [
        ({"type": "object", "properties": {}}, "async def t() -> Any: ..."),
        ({"type": "object"}, "async def t(**kwargs: Any) -> Any: ..."),
        ({}, "async def t(**kwargs: Any) -> Any: ..."),
        ({"type": "object", "properties": {}, "additionalProperties": True}, "async def t(**kwargs: Any) -> Any: ..."),
        (
            {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string"}},
            "async def t(*, a: int | None = None, **kwargs: str) -> Any: ...",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False},
            "async def t(*, a: int | None = None) -> Any: ...",
        ),
        (
            {"type": "object", "properties": {"a": {"type": ["string", "null"]}}},
            "async def t(*, a: str | None = None) -> Any: ...",
        ),
        ({"type": "object", "properties": {"a": {}}}, "async def t(*, a: Any = None) -> Any: ..."),
        (
            {"type": "object", "properties": {}, "required": ["ghost"]},
            "async def t(*, ghost: Any) -> Any: ...",
        ),
        ({"$ref": "#/$defs/In", "$defs": {"In": {"type": "object", "properties": {}}}}, "async def t() -> Any: ..."),
    ],
)
def test_the_parameters_follow_the_input_schema(schema: dict[str, Any], signature: str) -> None:
    assert build_stub(ToolSpec("t", schema)).splitlines()[0] == signature


def test_a_property_that_is_no_python_name_is_left_to_the_dict_form() -> None:
    spec = ToolSpec(
        "t",
        {
            "type": "object",
            "properties": {"user-id": {"type": "integer", "description": "Numeric id."}, "from": {}, "ok": {}},
            "required": ["user-id"],
        },
    )
    stub = build_stub(spec)
    assert stub.splitlines()[0] == "async def t(*, ok: Any = None, **kwargs: Any) -> Any:"
    assert '"user-id" (dict form only): Numeric id.' in stub
    assert '"from" (dict form only)' in stub


def test_a_property_called_kwargs_does_not_clash_with_the_extra_keywords() -> None:
    spec = ToolSpec("t", {"type": "object", "properties": {"kwargs": {"type": "string"}, "a-b": {}}})
    stub = build_stub(spec)
    assert stub.splitlines()[0] == "async def t(*, kwargs: str | None = None, **_kwargs: Any) -> Any:"
    ast.parse(stub)


def test_the_output_schema_is_the_return_type() -> None:
    spec = ToolSpec(
        "t", {"type": "object", "properties": {}}, {"type": "object", "additionalProperties": {"type": "integer"}}
    )
    assert build_stub(spec) == "async def t() -> dict[str, int]: ...\n"


@pytest.mark.parametrize(
    "description",
    ['Ends with a quote "', 'Has """ triple quotes', "Back\\slash \\n", "Control\x00\x07 chars\r\nand CRLF", "  "],
)
def test_any_description_renders_as_a_valid_docstring(description: str) -> None:
    spec = ToolSpec(
        "t", {"type": "object", "properties": {"a": {"type": "string", "description": description}}}, None, description
    )
    tree = ast.parse(build_stub(spec))
    function = tree.body[0]
    assert isinstance(function, ast.AsyncFunctionDef)
    doc = ast.get_docstring(function) or ""
    assert "\x00" not in doc
    assert description.replace("\r\n", "\n").replace("\x00", "").replace("\x07", "").strip().split("\n")[0] in doc


def test_declarations_give_each_tool_a_keyword_and_a_dict_overload() -> None:
    source = build_declarations([ISSUES, ToolSpec("ping", {"type": "object", "properties": {}})])
    tree = ast.parse(source)
    functions = [node for node in tree.body if isinstance(node, ast.AsyncFunctionDef)]
    assert [f.name for f in functions] == ["github_list_issues", "github_list_issues", "ping", "ping"]
    assert all(ast.unparse(f.decorator_list[0]) == "overload" for f in functions)
    dict_forms = [f for f in functions if f.args.posonlyargs]
    assert [ast.unparse(f.args.posonlyargs[0].annotation) for f in dict_forms] == ["dict[str, Any]"] * 2  # type: ignore[arg-type]
    assert source.startswith("from typing import Any, Literal, Never, overload\n")


def test_declarations_refuse_duplicate_and_unusable_names() -> None:
    with pytest.raises(ValueError, match="two tools"):
        build_declarations([ToolSpec("a"), ToolSpec("a")])
    for bad in ("has-dash", "_private", "class", "Any", "1st", "naïve"):
        with pytest.raises(ValueError, match="not a Python identifier"):
            build_declarations([ToolSpec(bad)])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("github_list_issues", "github_list_issues"),
        ("my-server_get-data", "my_server_get_data"),
        ("files.read", "files_read"),
        ("notes__search", "notes__search"),
        ("3d_render", "t_3d_render"),
        ("_internal", "t_internal"),
        ("class", "class_"),
        ("match", "match_"),
        ("overload", "overload_"),
        ("naïve tool", "na_ve_tool"),
        ("", "t_"),
    ],
)
def test_a_tool_name_becomes_a_python_identifier(name: str, expected: str) -> None:
    assert python_name(name) == expected
    assert python_name(name).isidentifier()

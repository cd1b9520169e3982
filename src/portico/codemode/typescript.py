"""JSON Schema → TypeScript: the `codemode` declarations the JavaScript engine's model reads.

Per tool, an input and an output type, then one `declare const codemode` listing every tool as a property:

    type GithubListIssuesInput = {
      /** The account owner. */
      owner: string;
      state?: "open" | "closed";
    };
    type GithubListIssuesOutput = unknown;

    declare const codemode: {
      /**
       * List issues.
       *
       * @param input.owner - The account owner.
       */
      github_list_issues: (input: GithubListIssuesInput) => Promise<GithubListIssuesOutput>;
    };

The declarations are prompt text (V8 runs plain JavaScript and checks nothing), but they are valid TypeScript:
tests compile them with `tsc --noEmit --strict`.

| JSON Schema | TypeScript |
| --- | --- |
| `true`, `{}`, no type, unknown type, external or unresolvable `$ref`, a `$ref` cycle, depth ≥ 20 | `unknown` |
| `false`, an empty `enum` | `never` |
| `string` / `integer`, `number` / `boolean` / `null` | `string` / `number` / `boolean` / `null` |
| `enum`, `const` | a union of literals (JSON-escaped strings); an object or array value: its type |
| more than 64 `enum` values | the union of their types |
| `anyOf`, `oneOf`, a `type` array, OpenAPI `nullable: true` | `A \\| B` (`\\| null`) |
| `allOf`, or a combinator beside `type`/`properties` | `A & B` (members that say nothing of the type drop out) |
| `prefixItems`, draft-4 `items: [...]` | a tuple `[A, B]`; `items`/`additionalItems` as `...T[]` rest |
| `items: T` / no `items` / `items: false` | `T[]` (`Array<A \\| B>` for a union or intersection) / `unknown[]` / `[]` |
| object with `properties` | `{ /** description */ key?: T; }`: optional unless `required`; other keys quoted |
| `additionalProperties: true` / `: T`, `patternProperties` | `[key: string]: unknown;` / `{...} & Record<string, T>` |
| object without `properties` | `Record<string, unknown>`, `Record<string, T>`, `{}` if `additionalProperties: false` |
| local `$ref` (`#/$defs/x`, JSON pointer with `~0`/`~1`, %-encoding) | the target's type, expanded inline |

Depth counts every nested schema (a property, an item, a combinator member, a `$ref` hop); a single conversion
also stops expanding after `MAX_NODES` schemas, so a `$ref` graph that fans out cannot blow up a catalog build.
The Python stubs (`portico.codemode.python.stubs`) stop at depth 8 because their objects stay `dict[str, Any]`;
here objects are expanded, so the limit is Cloudflare's 20. A typed index signature goes beside the literal, as
`& Record<string, T>`: inside it, TypeScript would require it to admit every property's type.

`*/` in comments is escaped and control characters are dropped; comments are the only place schema text reaches
the output besides JSON-escaped literals and keys.

Tool names: `js_identifier` makes a gateway tool name a property `codemode` exposes (`-`, `.` and whitespace
become `_`; other characters are dropped; a leading digit gets a `_` prefix; a reserved word a `_` suffix);
`js_identifiers` maps a catalog's names and refuses two that collide (`IdentifierCollisionError`).

Pure functions, no imports of the gateway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from portico.codemode.schema import lookup, resolve

MAX_DEPTH = 20  # a schema nested this deep renders as unknown
MAX_NODES = 5_000  # schemas one conversion expands; past this, unknown
MAX_LITERALS = 64  # a longer enum renders as the union of its values' types (as the Python stubs do)

# ECMAScript reserved words, strict-mode reserved words and the literals: a tool named so gets a `_` suffix.
RESERVED_WORDS = frozenset(
    {
        "await", "break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete", "do",
        "else", "enum", "export", "extends", "false", "finally", "for", "function", "if", "implements", "import",
        "in", "instanceof", "interface", "let", "new", "null", "package", "private", "protected", "public",
        "return", "static", "super", "switch", "this", "throw", "true", "try", "typeof", "var", "void", "while",
        "with", "yield",
    }
)  # fmt: skip

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_INDENT = "  "


class IdentifierCollisionError(ValueError):
    """Two tool names sanitise to the same JavaScript identifier: the catalog cannot expose both."""

    def __init__(self, identifier: str, first: str, second: str) -> None:
        self.identifier = identifier
        self.first = first
        self.second = second
        super().__init__(f"tools {first!r} and {second!r} both become codemode.{identifier}; rename one (alias)")


@dataclass(frozen=True, slots=True)
class ToolSignature:
    """One `codemode` function, described by its MCP tool definition."""

    name: str  # the JavaScript identifier the code calls (see `js_identifier`)
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=dict)
    output_schema: Mapping[str, Any] | None = None
    annotations: Mapping[str, Any] | None = None  # MCP ToolAnnotations: `title` and the `*Hint`s


def js_identifier(name: str) -> str:
    """A tool name made an identifier `codemode` can expose: `-`, `.` and whitespace become `_`, characters
    other than ASCII letters, digits, `_` and `$` are dropped, a leading digit gets a `_` prefix and a reserved
    word a `_` suffix. A name with nothing usable left becomes `_`. Distinct names may collide."""
    ident = re.sub(r"[^A-Za-z0-9_$]", "", re.sub(r"[-.\s]", "_", name))
    if not ident:
        return "_"
    if ident[0].isdigit():
        ident = "_" + ident
    if ident in RESERVED_WORDS:
        ident += "_"
    return ident


def js_identifiers(names: Iterable[str]) -> dict[str, str]:
    """Each name's identifier (`js_identifier`), in the given order.

    Raises:
        IdentifierCollisionError: two names (or one name twice) give the same identifier.
    """
    owners: dict[str, str] = {}
    mapping: dict[str, str] = {}
    for name in names:
        ident = js_identifier(name)
        if ident in owners:
            raise IdentifierCollisionError(ident, owners[ident], name)
        owners[ident] = name
        mapping[name] = ident
    return mapping


def typescript_type(schema: Any, *, root: Any = None) -> str:
    """The TypeScript type for a JSON Schema; local `$ref`s resolve against `root` (default: `schema`)."""
    return _Converter(schema if root is None else root).convert(schema, 0, (), 0).text


def declarations(tools: Sequence[ToolSignature]) -> str:
    """The declarations of every tool: input and output types, then `declare const codemode: {...}`.

    Raises:
        ValueError: a name is no identifier `codemode` can expose, or two tools share one.
    """
    seen: set[str] = set()
    for tool in tools:
        _check_name(tool.name)
        if tool.name in seen:
            raise ValueError(f"two tools are named {tool.name!r}")
        seen.add(tool.name)
    type_names = _type_names([tool.name for tool in tools])
    parts: list[str] = []
    members: list[str] = []
    for tool, base in zip(tools, type_names, strict=True):
        parts.append(_type_aliases(tool, base))
        members.append(_member(tool, base))
    parts.append("declare const codemode: {\n" + "".join(members) + "};\n")
    return "\n".join(parts)


def describe_tool(tool: ToolSignature) -> str:
    """One tool's declaration, as `describe(name)` shows it: its types and its `codemode` member.

    Raises:
        ValueError: the name is no identifier `codemode` can expose.
    """
    return declarations([tool])


def _check_name(name: str) -> None:
    if not _IDENTIFIER.match(name) or name != js_identifier(name):
        raise ValueError(f"tool name {name!r} is not an identifier the codemode object can expose")


def _type_names(names: Sequence[str]) -> list[str]:
    """A distinct PascalCase base per tool (`github_list_issues` → `GithubListIssues`); `a_b` and `aB` would
    share one, so later ones get a number."""
    used: set[str] = set()
    result: list[str] = []
    for name in names:
        pascal = "".join(part[:1].upper() + part[1:] for part in re.split(r"[_$]+", name)) or "Tool"
        if pascal[0].isdigit():
            pascal = "_" + pascal
        candidate, n = pascal, 2
        while candidate in used:
            candidate, n = f"{pascal}{n}", n + 1
        used.add(candidate)
        result.append(candidate)
    return result


def _type_aliases(tool: ToolSignature, base: str) -> str:
    converter = _Converter(tool.input_schema)
    converter.documented_elsewhere = converter.resolve(tool.input_schema)  # its properties are the @params
    input_type = converter.convert(tool.input_schema, 0, (), 0).text
    output_type = "unknown"
    if tool.output_schema is not None:
        output_type = _Converter(tool.output_schema).convert(tool.output_schema, 0, (), 0).text
    return f"type {base}Input = {input_type};\ntype {base}Output = {output_type};\n"


def _member(tool: ToolSignature, base: str) -> str:
    lines = _tool_doc(tool)
    doc = ""
    if lines:
        doc = f"{_INDENT}/**\n" + "".join(f"{_INDENT} *{' ' + line if line else ''}\n" for line in lines)
        doc += f"{_INDENT} */\n"
    return f"{doc}{_INDENT}{tool.name}: (input: {base}Input) => Promise<{base}Output>;\n"


def _tool_doc(tool: ToolSignature) -> list[str]:
    annotations = tool.annotations or {}
    text = tool.description
    title = annotations.get("title")
    if not text.strip() and isinstance(title, str):
        text = title
    lines = [line.rstrip() for line in _comment_text(text).strip().splitlines()]
    hints = _hints(annotations)
    if hints:
        lines += ([""] if lines else []) + [f"Hints: {', '.join(hints)}."]
    params = _param_docs(tool.input_schema)
    if params:
        lines += ([""] if lines else []) + params
    return lines


def _hints(annotations: Mapping[str, Any]) -> list[str]:
    hints: list[str] = []
    if annotations.get("readOnlyHint") is True:
        hints.append("read-only")
    elif annotations.get("destructiveHint") is True:
        hints.append("destructive")
    if annotations.get("idempotentHint") is True:
        hints.append("idempotent")
    if annotations.get("openWorldHint") is False:
        hints.append("closed world")
    return hints


def _param_docs(schema: Mapping[str, Any]) -> list[str]:
    converter = _Converter(schema)
    resolved = converter.resolve(schema)
    properties = resolved.get("properties")
    if not isinstance(properties, Mapping):
        return []
    lines: list[str] = []
    for key, prop in properties.items():
        if not isinstance(key, str):
            continue
        text = _property_text(converter.resolve(prop) if isinstance(prop, Mapping) else prop)
        if text:
            lines.append(f"@param input.{_comment_text(key)} - {' '.join(text.split())}")
    return lines


def _property_text(prop: Any) -> str:
    """A property's description (or title), squeezed to one line; its format and default."""
    if not isinstance(prop, Mapping):
        return ""
    bits: list[str] = []
    description = prop.get("description") or prop.get("title")
    if isinstance(description, str) and description.strip():
        bits.append(" ".join(description.split()))
    if isinstance(prop.get("format"), str):
        bits.append(f"@format {prop['format']}")
    if "default" in prop:
        bits.append(f"@default {json.dumps(prop['default'], ensure_ascii=False)[:80]}")
    return _comment_text(" ".join(bits))


def _comment_text(text: str) -> str:
    """Text safe inside a `/** */` comment: no `*/`, no control characters, `\\n` line ends."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text.replace("\u2028", " ").replace("\u2029", " ").replace("*/", "*\\/")


def _literal(value: Any) -> str:
    """A TypeScript literal type for a JSON scalar (strings JSON-escaped, which TypeScript reads as is)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value) if value == value and abs(value) != float("inf") else "number"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return _json_type(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "unknown[]"
    if isinstance(value, Mapping):
        return "Record<string, unknown>"
    return "unknown"


def _key(name: str) -> str:
    return name if _IDENTIFIER.match(name) else _literal(name)


@dataclass(frozen=True, slots=True)
class _Type:
    """A rendered type and how tightly it binds: an atom takes `[]`; a union or an intersection needs
    `Array<...>`, and a union inside an intersection needs parentheses."""

    text: str
    kind: Literal["atom", "union", "intersection"] = "atom"
    members: tuple[_Type, ...] = ()  # a union's members


UNKNOWN = _Type("unknown")
NEVER = _Type("never")


def _union(types: Iterable[_Type]) -> _Type:
    members: list[_Type] = []
    for t in types:
        if t.text == "unknown":
            return UNKNOWN
        for member in t.members if t.kind == "union" else (t,):
            if member.text != "never" and all(m.text != member.text for m in members):
                members.append(member)
    if not members:
        return NEVER
    if len(members) == 1:
        return members[0]
    return _Type(" | ".join(m.text for m in members), "union", tuple(members))


def _intersection(types: Sequence[_Type]) -> _Type:
    kept: list[_Type] = []
    for t in types:
        if t.text == "never":
            return NEVER
        if t.text != "unknown" and all(k.text != t.text for k in kept):
            kept.append(t)
    if not kept:
        return UNKNOWN
    if len(kept) == 1:
        return kept[0]
    return _Type(" & ".join(f"({t.text})" if t.kind == "union" else t.text for t in kept), "intersection")


def _array(element: _Type) -> _Type:
    return _Type(f"{element.text}[]" if element.kind == "atom" else f"Array<{element.text}>")


_SIMPLE = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean", "null": "null"}
_OBJECT_KEYS = ("properties", "additionalProperties", "patternProperties")
_ARRAY_KEYS = ("items", "prefixItems")
# keywords that say what type a value has; a combinator member with none of them only constrains
_TYPE_KEYS = frozenset(
    {"type", "$ref", "const", "enum", "anyOf", "oneOf", "allOf", "nullable", *_OBJECT_KEYS, *_ARRAY_KEYS}
)


class _Converter:
    """Converts the schemas of one document (local `$ref`s resolve against its root)."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.nodes = 0
        self.documented_elsewhere: Mapping[str, Any] | None = None  # an object whose property docs are omitted

    def resolve(self, schema: Any) -> Mapping[str, Any]:
        """The schema itself, following `$ref`s at its top (bounded)."""
        return resolve(self.root, schema, MAX_DEPTH)

    def lookup(self, ref: str) -> Any:
        """The target of a local JSON pointer (`#`, `#/$defs/a~1b`), or None."""
        return lookup(self.root, ref)

    def convert(self, schema: Any, depth: int, refs: tuple[str, ...], indent: int) -> _Type:
        self.nodes += 1
        if schema is False:
            return NEVER
        if not isinstance(schema, Mapping) or depth >= MAX_DEPTH or self.nodes > MAX_NODES:
            return UNKNOWN
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = self.lookup(ref)
            if ref in refs or target is None:
                return UNKNOWN
            return self.convert(target, depth + 1, (*refs, ref), indent)
        result = self._choices(schema, depth, refs, indent)
        if schema.get("nullable") is True:
            result = _union([result, _Type("null")])
        return result

    def _choices(self, schema: Mapping[str, Any], depth: int, refs: tuple[str, ...], indent: int) -> _Type:
        if "const" in schema:
            return _Type(_literal(schema["const"]))
        enum = schema.get("enum")
        if isinstance(enum, list):
            if len(enum) > MAX_LITERALS:
                return _union(_Type(_json_type(value)) for value in enum)
            return _union(_Type(_literal(value)) for value in enum)
        parts = [self._typed(schema, depth, refs, indent)]
        for key in ("anyOf", "oneOf"):
            members = schema.get(key)
            if isinstance(members, list) and members:
                parts.append(_union([self._member(m, depth, refs, indent) for m in members]))
        members = schema.get("allOf")
        if isinstance(members, list) and members:
            parts.extend(self._member(m, depth, refs, indent) for m in members)
        return _intersection(parts)

    def _member(self, member: Any, depth: int, refs: tuple[str, ...], indent: int) -> _Type:
        """A combinator member; one that only constrains (`{"required": [...]}`, `{"minLength": 1}`) says nothing
        of the type and drops out of the intersection as `unknown`."""
        if isinstance(member, Mapping) and not _TYPE_KEYS.intersection(member):
            return UNKNOWN
        return self.convert(member, depth + 1, refs, indent)

    def _typed(self, schema: Mapping[str, Any], depth: int, refs: tuple[str, ...], indent: int) -> _Type:
        declared = schema.get("type")
        if isinstance(declared, str):
            names = [declared]
        elif isinstance(declared, list):
            names = [t for t in declared if isinstance(t, str)]
        elif any(k in schema for k in _OBJECT_KEYS):
            names = ["object"]
        elif any(k in schema for k in _ARRAY_KEYS):
            names = ["array"]
        else:
            return UNKNOWN
        types: list[_Type] = []
        for name in names:
            if name in _SIMPLE:
                types.append(_Type(_SIMPLE[name]))
            elif name == "array":
                types.append(self._array(schema, depth, refs, indent))
            elif name == "object":
                types.append(self._object(schema, depth, refs, indent))
            else:
                return UNKNOWN
        return _union(types)

    def _array(self, schema: Mapping[str, Any], depth: int, refs: tuple[str, ...], indent: int) -> _Type:
        items = schema.get("items")
        prefix = schema.get("prefixItems")
        if isinstance(items, list):  # draft-4 tuple form
            prefix, items = items, schema.get("additionalItems")
        if not isinstance(prefix, list) or not prefix:
            if items is False:
                return _Type("[]")
            if items is None:
                return _array(UNKNOWN)
            return _array(self.convert(items, depth + 1, refs, indent))
        elements = [self.convert(m, depth + 1, refs, indent).text for m in prefix]
        if items is not None and items is not False:
            rest = _array(self.convert(items, depth + 1, refs, indent))
            elements.append(f"...{rest.text}")
        return _Type(f"[{', '.join(elements)}]")

    def _object(self, schema: Mapping[str, Any], depth: int, refs: tuple[str, ...], indent: int) -> _Type:
        properties = schema.get("properties")
        props: Mapping[str, Any] = properties if isinstance(properties, Mapping) else {}
        index = self._index(schema, depth, refs, indent)
        if not props:
            if index is None:
                extra = schema.get("additionalProperties")
                return _Type("{}" if extra is False else "Record<string, unknown>")
            return _Type(f"Record<string, {index.text}>")
        raw_required = schema.get("required")
        required = {r for r in raw_required if isinstance(r, str)} if isinstance(raw_required, list) else set()
        pad = _INDENT * (indent + 1)
        lines: list[str] = []
        for name, prop in props.items():
            if not isinstance(name, str):
                continue
            resolved = self.resolve(prop) if isinstance(prop, Mapping) else prop
            doc = None if schema is self.documented_elsewhere else _property_text(resolved)
            if doc:
                lines.append(f"{pad}/** {doc} */\n")
            member = self.convert(prop, depth + 1, refs, indent + 1)
            optional = "" if name in required else "?"
            lines.append(f"{pad}{_key(name)}{optional}: {member.text};\n")
        if index is not None and index.text == "unknown":
            lines.append(f"{pad}[key: string]: unknown;\n")
        body = _Type("{\n" + "".join(lines) + _INDENT * indent + "}")
        if index is None or index.text == "unknown":
            return body
        # an index signature inside the literal must admit every property's type; beside it, it need not
        return _intersection([body, _Type(f"Record<string, {index.text}>")])

    def _index(self, schema: Mapping[str, Any], depth: int, refs: tuple[str, ...], indent: int) -> _Type | None:
        """The type of keys beyond `properties`, or None when no schema says (or `additionalProperties: false`)."""
        values: list[Any] = []
        patterns = schema.get("patternProperties")
        if isinstance(patterns, Mapping):
            values.extend(patterns.values())
        extra = schema.get("additionalProperties")
        if extra is not None and extra is not False:
            values.append(extra)
        if not values:
            return None
        return _union([self.convert(v, depth + 1, refs, indent) for v in values])

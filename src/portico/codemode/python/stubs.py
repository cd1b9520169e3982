"""JSON Schema → Python stubs: the `codemode` module's declarations for the Python engine.

One stub per tool, from its `inputSchema` (parameters) and `outputSchema` (return type):

    async def github_list_issues(*, owner: str, state: Literal["open", "closed"] | None = None) -> dict[str, Any]:
        \"\"\"List issues.

        Args:
            owner: The account owner.
        \"\"\"

`build_stub` renders that form (what `describe()` shows a model); `build_declarations` renders the module the
engine type-checks code against (`Program.declarations`): each tool twice, as `@overload`s, the keyword form
above and the one-dict form `codemode.x({"owner": "acme"})` for prompts written for the JavaScript convention
(that form is not checked beyond "one dict").

| JSON Schema | Python |
| --- | --- |
| `true`, `{}`, no type, unknown type, external or unresolvable `$ref`, a `$ref` cycle, depth > 8 | `Any` |
| `false`, an empty `enum` | `Never` |
| `string` / `integer` / `number` / `boolean` / `null` | `str` / `int` / `float` / `bool` / `None` |
| `enum`, `const` (strings, integers, booleans, null) | `Literal[...]` (a float or a structured value: its type) |
| more than 64 `enum` values | the union of their types |
| `anyOf`, `oneOf`, a `type` array, OpenAPI `nullable: true` | `A \\| B` |
| `allOf` | the members' type when they agree, else `Any` |
| `array` (`items`, `prefixItems`, draft-4 item lists) | `list[T]` (`T` the union of the item types) |
| `object` | `dict[str, Any]`; `dict[str, T]` when only `additionalProperties: T` is given |
| local `$ref` (`#/$defs/x`, JSON pointer with `~0`/`~1`) | the target's type |

Parameters: required first (in `properties` order), then optional ones as `name: T | None = None`. A property
whose name is no Python identifier (`user-id`, `from`) can only be passed in the dict form (or `**{...}`); such
properties, `additionalProperties` given explicitly and a schema with no `properties` at all add `**kwargs`.
Otherwise unknown keyword arguments are type errors: that is what catches a model's typo'd parameter name.

Pure functions, no imports of the gateway.
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from portico.codemode.schema import lookup, resolve

MAX_DEPTH = 8  # nesting beyond this renders as Any
MAX_LITERALS = 64  # a longer enum renders as the union of its values' types
# names the stub module itself uses: a tool may not shadow them
RESERVED_NAMES = frozenset({"Any", "Literal", "Never", "overload"})

_HEADER = "from typing import Any, Literal, Never, overload\n"
_WRAP_AT = 100  # a longer signature gets one parameter per line
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One host function of the `codemode` module, described by its MCP tool definition."""

    name: str  # the Python identifier the code calls (see `python_name`)
    input_schema: Mapping[str, Any] = field(default_factory=dict)
    output_schema: Mapping[str, Any] | None = None
    description: str = ""


def python_name(name: str) -> str:
    """A tool name made a Python identifier the `codemode` module can expose: characters other than ASCII
    letters, digits and `_` become `_`; a leading digit or `_` gets a `t` prefix (Monty hides names starting
    with `_`); a keyword or a name of `RESERVED_NAMES` gets a `_` suffix. Distinct names may collide; the
    catalog must refuse a collision."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    if not ident or ident[0].isdigit() or ident[0] == "_":
        ident = "t" + (ident if ident.startswith("_") else "_" + ident)
    if keyword.iskeyword(ident) or keyword.issoftkeyword(ident) or ident in RESERVED_NAMES:
        ident += "_"
    return ident


def python_type(schema: Any, *, root: Any = None) -> str:
    """The Python type expression for a JSON Schema; local `$ref`s resolve against `root` (default: `schema`)."""
    return _Converter(schema if root is None else root).convert(schema, 0, ()).render()


def build_stub(spec: ToolSpec) -> str:
    """The keyword form of one tool's stub, with its docstring: what a model reads for one tool."""
    _check_name(spec.name)
    converter = _Converter(spec.input_schema)
    return _render_def(spec, converter)


def build_declarations(specs: Iterable[ToolSpec]) -> str:
    """The `.pyi` source of the `codemode` module: each tool as two overloads (keywords; one dict).

    Raises:
        ValueError: a name is no identifier the module can expose, or two tools share one.
    """
    parts = [_HEADER]
    seen: set[str] = set()
    for spec in specs:
        _check_name(spec.name)
        if spec.name in seen:
            raise ValueError(f"two tools are named {spec.name!r}")
        seen.add(spec.name)
        converter = _Converter(spec.input_schema)
        returns = _returns(spec)
        parts.append(
            "\n@overload\n"
            + _render_def(spec, converter)
            + f"@overload\nasync def {spec.name}(arguments: dict[str, Any], /) -> {returns}: ...\n"
        )
    return "".join(parts)


def _check_name(name: str) -> None:
    if not name.isidentifier() or not name.isascii() or name != python_name(name):
        raise ValueError(f"tool name {name!r} is not a Python identifier the codemode module can expose")


def _returns(spec: ToolSpec) -> str:
    if spec.output_schema is None:
        return "Any"
    return _Converter(spec.output_schema).convert(spec.output_schema, 0, ()).render()


def _render_def(spec: ToolSpec, converter: _Converter) -> str:
    schema = converter.resolve_root(spec.input_schema)
    properties = schema.get("properties")
    props: Mapping[str, Any] = properties if isinstance(properties, Mapping) else {}
    raw_required = schema.get("required")
    required = [r for r in raw_required if isinstance(r, str)] if isinstance(raw_required, list) else []

    params: list[str] = []
    optional: list[str] = []
    docs: list[str] = []
    dict_only: list[str] = []
    names = list(props) + [r for r in required if r not in props]
    for name in names:
        prop = props.get(name, True)
        annotation = converter.convert(prop, 1, ())
        if not _is_parameter_name(name):
            dict_only.append(name)
        elif name in required:
            params.append(f"{name}: {annotation.render()}")
        else:
            optional.append(f"{name}: {annotation.optional().render()} = None")
        doc = _param_doc(name, converter.resolve_root(prop) if isinstance(prop, Mapping) else prop)
        if doc:
            docs.append(doc)

    kwargs = _kwargs_type(schema, properties, dict_only, converter)
    kwargs_name = "kwargs"
    while kwargs_name in props:  # a property may be called `kwargs`
        kwargs_name = "_" + kwargs_name
    parameters = (["*", *params, *optional] if params or optional else []) + (
        [f"**{kwargs_name}: {kwargs}"] if kwargs else []
    )
    returns = _returns(spec)
    head = f"async def {spec.name}({', '.join(parameters)}) -> {returns}:"
    if len(head) > _WRAP_AT and parameters:
        head = f"async def {spec.name}(\n" + "".join(f"    {p},\n" for p in parameters) + f") -> {returns}:"
    body = _docstring(spec.description, docs)
    if body is None:
        return head + " ...\n"
    return head + "\n" + body


def _is_parameter_name(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _kwargs_type(schema: Mapping[str, Any], properties: Any, dict_only: list[str], converter: _Converter) -> str | None:
    extra = schema.get("additionalProperties")
    if dict_only or extra is True or (extra is None and properties is None):
        return "Any"
    if isinstance(extra, Mapping):
        return converter.convert(extra, 1, ()).render()
    return None


def _param_doc(name: str, prop: Any) -> str | None:
    if not isinstance(prop, Mapping):
        return None
    bits: list[str] = []
    description = prop.get("description") or prop.get("title")
    if isinstance(description, str) and description.strip():
        bits.append(" ".join(description.split()))
    if isinstance(prop.get("format"), str):
        bits.append(f"Format: {prop['format']}.")
    if "default" in prop:
        bits.append(f"Default: {json.dumps(prop['default'], ensure_ascii=False)[:80]}.")
    if _is_parameter_name(name):
        return f"{name}: {' '.join(bits)}" if bits else None
    label = f"{json.dumps(name, ensure_ascii=False)} (dict form only)"
    return f"{label}: {' '.join(bits)}" if bits else label


def _docstring(description: str, docs: list[str]) -> str | None:
    lines = [line.rstrip() for line in _clean(description).strip().splitlines()]
    if docs:
        lines += ([""] if lines else []) + ["Args:"] + [f"    {_clean(d)}" for d in docs]
    if not lines:
        return None
    body = "\n".join(f"    {line}" if line else "" for line in lines)
    return f'    """{body.lstrip()}\n    """\n'


def _clean(text: str) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


@dataclass(slots=True)
class _Union:
    """A union of Python types being built: literal values, other types, `None`, or absorbing `Any`."""

    literals: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    none: bool = False
    any: bool = False

    @classmethod
    def of(cls, *types: str) -> _Union:
        union = cls()
        for t in types:
            union.add_type(t)
        return union

    def add_type(self, t: str) -> None:
        if t == "Any":
            self.any = True
        elif t == "None":
            self.none = True
        elif t != "Never" and t not in self.types:
            self.types.append(t)

    def add_literal(self, value: Any) -> None:
        if value is None:
            self.none = True
        elif isinstance(value, bool):
            self._literal("True" if value else "False")
        elif isinstance(value, int):
            self._literal(str(value))
        elif isinstance(value, str):
            self._literal(json.dumps(value))
        else:
            self.add_type(_json_type(value))

    def _literal(self, rendered: str) -> None:
        if rendered not in self.literals:
            self.literals.append(rendered)

    def merge(self, other: _Union) -> None:
        self.any = self.any or other.any
        self.none = self.none or other.none
        for lit in other.literals:
            self._literal(lit)
        for t in other.types:
            self.add_type(t)

    def optional(self) -> _Union:
        result = _Union()
        result.merge(self)
        result.none = True
        return result

    @property
    def is_any(self) -> bool:
        return self.any

    def render(self) -> str:
        if self.any:
            return "Any"
        parts = ([f"Literal[{', '.join(self.literals)}]"] if self.literals else []) + self.types
        if self.none:
            parts.append("None")
        return " | ".join(parts) if parts else "Never"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list[Any]"
    if isinstance(value, Mapping):
        return "dict[str, Any]"
    return "None" if value is None else "Any"


_SIMPLE = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}
_OBJECT_KEYS = ("properties", "additionalProperties", "required", "patternProperties")
_ARRAY_KEYS = ("items", "prefixItems")


class _Converter:
    """Converts the schemas of one document (local `$ref`s resolve against its root)."""

    def __init__(self, root: Any) -> None:
        self.root = root

    def resolve_root(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """The schema itself, following `$ref`s at its top (bounded)."""
        return resolve(self.root, schema, MAX_DEPTH)

    def lookup(self, ref: str) -> Any:
        """The target of a local JSON pointer (`#`, `#/$defs/a~1b`), or None."""
        return lookup(self.root, ref)

    def convert(self, schema: Any, depth: int, refs: tuple[str, ...]) -> _Union:
        if schema is True or schema is None:
            return _Union.of("Any")
        if schema is False:
            return _Union()
        if not isinstance(schema, Mapping) or depth > MAX_DEPTH:
            return _Union.of("Any")
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = self.lookup(ref)
            if ref in refs or target is None:
                return _Union.of("Any")
            return self.convert(target, depth + 1, (*refs, ref))
        result = self._choices(schema, depth, refs)
        if schema.get("nullable") is True:
            result.none = True
        return result

    def _choices(self, schema: Mapping[str, Any], depth: int, refs: tuple[str, ...]) -> _Union:
        if "const" in schema:
            union = _Union()
            union.add_literal(schema["const"])
            return union
        enum = schema.get("enum")
        if isinstance(enum, list):
            union = _Union()
            for value in enum:
                if len(enum) > MAX_LITERALS:
                    union.add_type(_json_type(value))
                else:
                    union.add_literal(value)
            return union
        outer = self._typed(schema, depth, refs)
        for key in ("anyOf", "oneOf"):
            members = schema.get(key)
            if isinstance(members, list) and members:
                union = _Union()
                for member in members:
                    union.merge(self.convert(member, depth + 1, refs))
                return outer if union.is_any and not outer.is_any else union
        members = schema.get("allOf")
        if isinstance(members, list) and members:
            converted = [self.convert(m, depth + 1, refs) for m in members]
            known = [u for u in converted if not u.is_any]
            rendered = {u.render() for u in known}
            if len(rendered) == 1:
                return known[0]
            return outer
        return outer

    def _typed(self, schema: Mapping[str, Any], depth: int, refs: tuple[str, ...]) -> _Union:
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
            return _Union.of("Any")
        union = _Union()
        for name in names:
            if name in _SIMPLE:
                union.add_type(_SIMPLE[name])
            elif name == "array":
                union.add_type(f"list[{self._items(schema, depth, refs).render()}]")
            elif name == "object":
                union.add_type(self._object(schema, depth, refs))
            else:
                union.add_type("Any")
        return union

    def _items(self, schema: Mapping[str, Any], depth: int, refs: tuple[str, ...]) -> _Union:
        items = schema.get("items")
        prefix = schema.get("prefixItems")
        if isinstance(items, list):  # draft-4 tuple form
            prefix, items = items, schema.get("additionalItems")
        if not isinstance(prefix, list):
            return _Union.of("Any") if items is None else self.convert(items, depth + 1, refs)
        union = _Union()
        for member in prefix:
            union.merge(self.convert(member, depth + 1, refs))
        if items is not None and items is not False:
            union.merge(self.convert(items, depth + 1, refs))
        return union if prefix or items is not None else _Union.of("Any")

    def _object(self, schema: Mapping[str, Any], depth: int, refs: tuple[str, ...]) -> str:
        extra = schema.get("additionalProperties")
        if "properties" in schema or "patternProperties" in schema or not isinstance(extra, Mapping):
            return "dict[str, Any]"
        return f"dict[str, {self.convert(extra, depth + 1, refs).render()}]"

"""What one Code Mode run may see and call: the caller's own tool list, named for the sandbox.

Built per run from the `tools/list` the caller would get on the same URL (an inner exchange through the whole
pipeline, so policy, pins and everything else that hides tools has already spoken). Each tool gets an
identifier valid in the engine's language (`notes__add_note` stays as it is; `my-server__get.data` becomes
`my_server__get_data`), a compact summary for `search`, a ranked keyword search, one tool's full typed signature
for `describe`, and a cached argument validator (JSON Schema) that runs before any call leaves the sandbox.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from portico.codemode.python.stubs import ToolSpec, build_declarations, build_stub, python_name
from portico.codemode.settings import EngineName
from portico.codemode.typescript import ToolSignature, describe_tool, js_identifier
from portico.types import JSON

log = logging.getLogger("portico.codemode")

MAX_SEARCH_RESULTS = 50
DEFAULT_SEARCH_RESULTS = 10
SUMMARY_DESCRIPTION_CHARS = 300
_SPLIT = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
# Field weights for ranked search: a hit in the name counts most, then server and title, then the description.
_WEIGHTS = (("name", 10.0), ("server", 6.0), ("title", 6.0), ("params", 3.0), ("description", 2.0))


def words(text: str) -> list[str]:
    """Lowercase words of `text`, splitting camelCase, snake_case, dots, dashes and paths."""
    return [w.lower() for w in _SPLIT.findall(text)]


@dataclass(frozen=True, slots=True)
class CodeTool:
    ident: str  # what the code calls: codemode.<ident>
    public: str  # the tool's name on this URL (what an inner tools/call names)
    server: str | None
    definition: JSON  # as listed to this caller
    _words: dict[str, frozenset[str]] = field(default_factory=dict, compare=False)

    @property
    def input_schema(self) -> Mapping[str, Any]:
        schema = self.definition.get("inputSchema")
        return schema if isinstance(schema, Mapping) else {"type": "object"}

    @property
    def output_schema(self) -> Mapping[str, Any] | None:
        schema = self.definition.get("outputSchema")
        return schema if isinstance(schema, Mapping) else None

    @property
    def description(self) -> str:
        text = self.definition.get("description")
        return text if isinstance(text, str) else ""


class CodeCatalog:
    """The tools of one run, by sandbox identifier."""

    def __init__(self, tools: Sequence[tuple[JSON, str | None]], engine: EngineName) -> None:
        """`tools`: (definition as listed, server id) pairs, in listing order."""
        self.engine = engine
        self.tools: list[CodeTool] = []
        self.by_ident: dict[str, CodeTool] = {}
        for definition, server in tools:
            public = definition.get("name")
            if not isinstance(public, str):
                continue
            ident = _unique(_identifier(public, engine), public, self.by_ident)
            tool = CodeTool(ident, public, server, definition, _index(definition, server))
            self.tools.append(tool)
            self.by_ident[ident] = tool

    def summaries(self) -> list[JSON]:
        """The `tools` the code reads: compact, descriptions cut at 300 characters."""
        out = []
        for tool in self.tools:
            item: JSON = {"name": tool.ident, "server": tool.server, "description": _cut(tool.description)}
            for key in ("title", "inputSchema", "annotations"):
                if key in tool.definition:
                    item[key] = tool.definition[key]
            out.append(item)
        return out

    def search(self, query: str, limit: int = DEFAULT_SEARCH_RESULTS) -> list[JSON]:
        """Tools ranked by keyword hits, best first. One or two query words must all hit; longer queries need
        60% of their words. Each hit counts the weight of the best field it is in (name > server, title >
        parameter names > description)."""
        wanted = list(dict.fromkeys(words(query)))
        if not wanted:
            return []
        need = len(wanted) if len(wanted) <= 2 else max(1, round(0.6 * len(wanted)))
        ranked: list[tuple[float, int, CodeTool]] = []
        for position, tool in enumerate(self.tools):
            total, hits = 0.0, 0
            for word in wanted:
                best = max((w for f, w in _WEIGHTS if _hit(word, tool._words.get(f, frozenset()))), default=0.0)
                if best:
                    hits += 1
                    total += best
            if hits >= need:
                ranked.append((-total, position, tool))
        ranked.sort(key=lambda item: (item[0], item[1]))
        limit = max(1, min(limit, MAX_SEARCH_RESULTS))
        return [
            {"name": t.ident, "server": t.server, "description": _cut(t.description), "score": -score}
            for score, _, t in ranked[:limit]
        ]

    def describe(self, ident: str) -> str | None:
        """The full typed signature of one tool in the engine's language, or None for an unknown name."""
        tool = self.by_ident.get(ident)
        if tool is None:
            return None
        if self.engine == "python":
            return build_stub(_spec(tool))
        return describe_tool(_signature(tool))

    def declarations(self) -> str | None:
        """Python stubs of every tool (the Python engine type-checks calls against them before running)."""
        if self.engine != "python" or not self.tools:
            return None
        try:
            return build_declarations(_spec(tool) for tool in self.tools)
        except ValueError as exc:  # a name the checker cannot take: run unchecked rather than refuse the catalog
            log.warning("codemode: stubs not built, calls are not type-checked before the run: %s", exc)
            return None


def _identifier(public: str, engine: EngineName) -> str:
    return python_name(public) if engine == "python" else js_identifier(public)


def _unique(ident: str, public: str, taken: Mapping[str, CodeTool]) -> str:
    """Two tools whose names sanitise alike: the later one gets a stable suffix from its real name."""
    if ident not in taken:
        return ident
    return f"{ident}_{hashlib.sha256(public.encode()).hexdigest()[:6]}"


def _index(definition: JSON, server: str | None) -> dict[str, frozenset[str]]:
    schema = definition.get("inputSchema")
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    params = " ".join(props) if isinstance(props, Mapping) else ""
    texts = {
        "name": str(definition.get("name", "")),
        "server": server or "",
        "title": str(definition.get("title", "")),
        "params": params,
        "description": str(definition.get("description", "")),
    }
    return {key: frozenset(words(text)) for key, text in texts.items()}


def _hit(word: str, field_words: Iterable[str]) -> bool:
    return any(w == word or (len(word) >= 3 and w.startswith(word)) for w in field_words)


def _cut(text: str) -> str:
    return text if len(text) <= SUMMARY_DESCRIPTION_CHARS else text[: SUMMARY_DESCRIPTION_CHARS - 1] + "…"


def _spec(tool: CodeTool) -> ToolSpec:
    return ToolSpec(tool.ident, tool.input_schema, tool.output_schema, tool.description)


def _signature(tool: CodeTool) -> ToolSignature:
    annotations = tool.definition.get("annotations")
    return ToolSignature(
        tool.ident,
        tool.description,
        tool.input_schema,
        tool.output_schema,
        annotations if isinstance(annotations, Mapping) else None,
    )


class ArgumentCheck:
    """JSON Schema validators of tool input schemas, compiled once per distinct schema (bounded)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._cache: dict[str, Validator | None] = {}
        self._max = max_entries

    def problem(self, schema: Mapping[str, Any], arguments: Any) -> str | None:
        """Why `arguments` do not satisfy `schema` (first error, with its path), or None. A schema that is itself
        invalid cannot judge anything: the upstream will (logged once)."""
        validator = self._validator(schema)
        if validator is None:
            return None
        error = next(iter(validator.iter_errors(arguments)), None)
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path)
        return f"{where or 'arguments'}: {error.message[:300]}"

    def _validator(self, schema: Mapping[str, Any]) -> Validator | None:
        try:
            key = hashlib.sha256(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)).hexdigest()
        except TypeError:
            return None
        if key in self._cache:
            return self._cache[key]
        cls = validator_for(schema, default=Draft202012Validator)
        try:
            cls.check_schema(dict(schema))
            validator: Validator | None = cls(schema)
        except SchemaError as exc:
            log.warning("codemode: a tool's inputSchema is invalid; its arguments go unchecked: %s", exc.message)
            validator = None
        if len(self._cache) >= self._max:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = validator
        return validator

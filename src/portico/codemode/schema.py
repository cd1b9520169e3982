"""Local JSON Schema references, shared by the TypeScript and the Python signature generators."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

MAX_REF_HOPS = 20  # `$ref` chains followed at the top of a schema before giving up


def lookup(root: Any, ref: str) -> Any:
    """The target of a local JSON pointer (`#`, `#/$defs/a~1b`, %-escapes allowed) in `root`, or None."""
    if not ref.startswith("#"):
        return None
    node: Any = root
    pointer = unquote(ref[1:])
    if not pointer:
        return node
    if not pointer.startswith("/"):
        return None
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def resolve(root: Any, schema: Any, hops: int = MAX_REF_HOPS) -> Mapping[str, Any]:
    """`schema` itself after following the `$ref`s at its top (at most `hops`); {} when that leads nowhere."""
    current: Any = schema
    for _ in range(hops):
        ref = current.get("$ref") if isinstance(current, Mapping) else None
        if not isinstance(ref, str):
            break
        current = lookup(root, ref)
    return current if isinstance(current, Mapping) else {}

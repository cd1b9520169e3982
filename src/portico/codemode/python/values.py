"""Values crossing out of the sandbox, made JSON: a run's result and the arguments of a host call.

Monty hands the host Python objects: tuples, sets, bytes, datetimes, dataclass proxies, integers of any size,
and containers nested as deep as the sandbox's memory allows. `to_json` turns them into what the engine
interface promises (dicts with string keys, lists, str, int, float, bool, None), or says why it cannot. It never
recurses deeper than `MAX_DEPTH`, so a sandbox-built 100,000-deep list cannot exhaust the gateway's stack.

Pure functions, no imports of the gateway.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

from pydantic_monty import MontyClassProxy, MontyStdTypeProxy

MAX_DEPTH = 100  # JSON nesting accepted from the sandbox
_INT64 = 2**63


class NotJsonError(ValueError):
    """A value cannot be represented as JSON (its message names the type, never the value)."""


def to_json(value: Any) -> Any:
    """`value` as plain JSON data.

    Tuples and sets become lists, datetimes ISO strings, dataclass instances dicts of their fields, non-finite
    floats None (as JSON.stringify does), integers beyond 64 bits strings; dict keys that are numbers, booleans
    or None become strings (as `json.dumps` does).

    Raises:
        NotJsonError: the value holds something else (bytes, a function, a module), a key of another type, or
            nests deeper than `MAX_DEPTH`.
    """
    return _convert(value, 0)


def _convert(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        raise NotJsonError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list | tuple | set | frozenset):
        return [_convert(item, depth + 1) for item in value]
    if isinstance(value, Mapping):
        return {_key(k): _convert(v, depth + 1) for k, v in value.items()}
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, MontyClassProxy) and value.is_dataclass:
        return {_key(k): _convert(v, depth + 1) for k, v in value.attributes.items()}
    raise NotJsonError(f"a value of type {_type_name(value)} is not JSON")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    if isinstance(key, int | float):
        return str(key)
    raise NotJsonError(f"a dict key of type {_type_name(key)} is not JSON")


def _type_name(value: Any) -> str:
    if isinstance(value, MontyClassProxy):
        return value.name
    if isinstance(value, MontyStdTypeProxy):
        return f"builtin {value.kind}"
    return type(value).__name__

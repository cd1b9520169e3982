"""Render the configuration reference (docs/configuration.md) from the settings models themselves.

The docs test compares the committed file with this rendering, so a setting cannot be added undocumented.
"""

from __future__ import annotations

import types
import typing
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

from portico.config import Settings

HEADER = """# Configuration reference

Generated from the settings models by `portico reference` (do not edit by hand; the docs test checks it).
Every key can also be set from the environment: `PORTICO_<SECTION>__<KEY>` (e.g. `PORTICO_LISTEN__PORT=9000`);
server entries by id: `PORTICO_SERVERS__<ID>__<KEY>` (dashes in the id written as underscores). Credentials are
never written in the file: use `${env:NAME}` or `${file:/path}` references.

| key | type | default | description |
| --- | --- | --- | --- |
"""


def render() -> str:
    rows: list[str] = []
    _walk(Settings, "", rows)
    return HEADER + "\n".join(rows) + "\n"


def _walk(model: type[BaseModel], prefix: str, rows: list[str]) -> None:
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        nested = _model_in(annotation)
        if nested is not None and not _is_list(annotation):
            rows.append(f"| `{key}` | section | | {field.description or ''} |")
            _walk(nested, key + ".", rows)
            continue
        if nested is not None:  # a list of entries, e.g. servers[]
            rows.append(f"| `{key}[]` | list | `[]` | {field.description or ''} |")
            _walk(nested, key + "[].", rows)
            continue
        default = "(required)" if field.is_required() else _show(field.get_default(call_default_factory=True))
        rows.append(f"| `{key}` | {_type_name(annotation)} | {default} | {field.description or ''} |")


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list or any(_is_list(a) for a in typing.get_args(annotation))


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(annotation))}]"
    return "none" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, str | PurePath):
        return f"`{value}`"
    return f"`{value!r}`"

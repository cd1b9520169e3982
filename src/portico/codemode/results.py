"""Values crossing the sandbox boundary: a tool's MCP result as the code sees it, and a run as the model sees it.

Into the sandbox (`unwrap`, the convention of Cloudflare's Code Mode): an error result raises `ToolError` with
its text; `structuredContent` is the value; all-text content is parsed as JSON when it is JSON, else the joined
text; anything else (images, audio, resources) is the list of content items with binary data replaced by a
`{type, mimeType, size}` stub, so no blob is ever copied into the sandbox.

Back to the model (`reply`): one text content item holding JSON — `{"result", "logs", "calls"}`, or on failure
`{"error": {"type", "message", "line"}, "logs", "calls"}` with `isError` — where `calls` lists every tool call
that completed (tool, ok, ms), so the model knows which side effects happened even when the run failed. Text
beyond the configured size is cut, with a marker telling the model to narrow its query. `structuredContent`
carries the same object when it fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from portico.codemode.engine import RunResult, ToolError
from portico.types import JSON

_BINARY_KEYS = ("data", "blob")


@dataclass(frozen=True, slots=True)
class CallRecord:
    tool: str
    ok: bool
    ms: int

    def to_json(self) -> JSON:
        return {"tool": self.tool, "ok": self.ok, "ms": self.ms}


def unwrap(result: JSON) -> Any:
    """The value of a tool result for the code (see the module docstring).

    Raises:
        ToolError: the result is an error (`isError: true`).
    """
    content = result.get("content")
    items = content if isinstance(content, list) else []
    texts = [c.get("text") for c in items if isinstance(c, dict) and c.get("type") == "text"]
    if result.get("isError") is True:
        message = "\n".join(t for t in texts if isinstance(t, str)) or "the tool reported an error"
        raise ToolError(message)
    if "structuredContent" in result and result["structuredContent"] is not None:
        return result["structuredContent"]
    if items and len(texts) == len(items) and all(isinstance(t, str) for t in texts):
        joined = "\n".join(texts)  # type: ignore[arg-type]  # checked just above
        try:
            return orjson.loads(joined)
        except orjson.JSONDecodeError:
            return joined
    return [_stub(item) for item in items]


def _stub(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    out = dict(item)
    for key in _BINARY_KEYS:
        if isinstance(out.get(key), str):
            out[key] = {"omitted": True, "size": len(out[key]) * 3 // 4}
    resource = out.get("resource")
    if isinstance(resource, dict) and isinstance(resource.get("blob"), str):
        out["resource"] = {**resource, "blob": {"omitted": True, "size": len(resource["blob"]) * 3 // 4}}
    return out


def reply(run: RunResult, calls: Sequence[CallRecord], max_chars: int) -> JSON:
    """The `tools/call` result of a search or execute run."""
    body: JSON
    if run.error is None:
        body = {"result": run.value}
    else:
        error: JSON = {"type": run.error.kind.value, "message": run.error.message}
        if run.error.line is not None:
            error["line"] = run.error.line
        body = {"error": error}
    if run.logs:
        body["logs"] = run.logs + ("\n[logs truncated]" if run.logs_truncated else "")
    body["calls"] = [c.to_json() for c in calls]
    text = orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
    result: JSON = {"content": [{"type": "text", "text": _cut(text, max_chars)}]}
    if len(text) <= max_chars:
        result["structuredContent"] = body
    if run.error is not None:
        result["isError"] = True
    return result


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    tokens = len(text) // 4
    return (
        text[:max_chars]
        + f"\n\n--- TRUNCATED ---\nThe reply was ~{tokens:,} tokens (limit ~{max_chars // 4:,}). Return less: filter, "
        "count or summarise in code, or narrow the query."
    )

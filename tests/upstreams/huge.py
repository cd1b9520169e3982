"""Huge-output fixture: ``big(n_kb)`` returns exactly ``n_kb`` KiB (``n_kb * 1024`` bytes) of text.

The text is ASCII, one line per 64 bytes, and starts every line with its offset so truncation
and reordering are visible. There is no size cap: use it to test the gateway's limits.

Run: ``python -m tests.upstreams.huge --transport http|stdio|sse [--port 0]``
"""

from __future__ import annotations

from collections.abc import Sequence

from mcp.server import MCPServer

from tests.upstreams._serve import serve

LINE = 64

mcp = MCPServer("portico-huge", version="1.0.0")


def payload(n_bytes: int) -> str:
    lines = []
    for offset in range(0, n_bytes, LINE):
        width = min(LINE, n_bytes - offset)
        head = f"{offset:010d}:"
        line = (head + "x" * LINE)[: width - 1] + "\n" if width > 1 else "\n"
        lines.append(line)
    return "".join(lines)


@mcp.tool(description="Returns n_kb kibibytes of text", structured_output=False)
def big(n_kb: int) -> str:
    if n_kb < 0:
        raise ValueError("n_kb must be >= 0")
    return payload(n_kb * 1024)


def main(argv: Sequence[str] | None = None) -> None:
    serve(mcp, argv, description=__doc__ or "huge")


if __name__ == "__main__":
    main()

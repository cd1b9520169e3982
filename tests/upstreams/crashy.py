"""Crashing fixture: ``crash()`` makes the process exit immediately with code 3.

``ok()`` answers normally until then. With ``--crash-on-start`` the process exits with code 3
before serving anything (before the LISTENING line over HTTP, before reading stdin over stdio):
spawned by a supervisor over stdio, that is the crash-looping upstream.

Run: ``python -m tests.upstreams.crashy --transport http|stdio|sse [--port 0] [--crash-on-start]``
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mcp.server import MCPServer

from tests.upstreams._serve import serve

EXIT_CODE = 3

mcp = MCPServer("portico-crashy", version="1.0.0")


@mcp.tool(description="Answers while the process is alive")
def ok() -> str:
    return "still alive"


@mcp.tool(description="Kills the server process at once (exit code 3), without answering")
def crash() -> str:
    sys.stderr.write("crashy: crash() called, exiting with code 3\n")
    sys.stderr.flush()
    os._exit(EXIT_CODE)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--crash-on-start", action="store_true")
    own, rest = parser.parse_known_args(argv)
    if own.crash_on_start:
        sys.stderr.write("crashy: --crash-on-start, exiting with code 3\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)
    serve(mcp, rest, description=__doc__ or "crashy")


if __name__ == "__main__":
    main()

"""Code Mode latency through Portico: an `execute` whose code makes one tool call, against the bare call.

Starts a Portico in this process (uvicorn on loopback, SQLite store and audit in a temporary directory) in front
of the `tests.upstreams.echo` stdio server, with Code Mode `opt_in`, then alternates, per engine, blocks of bare
`tools/call echo__echo` and `tools/call execute` running `await codemode.echo__echo({text: "hi"})` (2026-07-28
era, raw JSON-RPC over one HTTP client; no SDK on the client side). Reports p50/p95 of both and the difference:
what Code Mode adds to one call (target: ≤ 10 ms p50 for each engine).

    .venv/bin/python bench/codemode_latency.py                 # both engines, 300 calls of each kind
    .venv/bin/python bench/codemode_latency.py --engine python --calls 1000 --type-check
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.portico import make_settings, serve  # noqa: E402
from tests.upstreams.launch import stdio_argv  # noqa: E402

MODERN = "2026-07-28"
CODE = {
    "javascript": 'await codemode.echo__echo({text: "hi"})',
    "python": 'await codemode.echo__echo(text="hi")',
}


def body(n: int, name: str, arguments: dict[str, Any]) -> bytes:
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    params = {"name": name, "arguments": arguments, "_meta": meta}
    return orjson.dumps({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": params})


async def timed(http: httpx2.AsyncClient, url: str, name: str, arguments: dict[str, Any], n: int) -> float:
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": name,
    }
    began = time.perf_counter()
    response = await http.post(url, content=body(n, name, arguments), headers=headers)
    elapsed = time.perf_counter() - began
    answer = orjson.loads(response.content)
    result = answer.get("result")
    if not isinstance(result, dict) or result.get("isError"):
        raise RuntimeError(f"{name} failed: {answer}")
    return elapsed * 1000


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return f"p50 {statistics.median(ordered):6.2f} ms  p95 {p95:6.2f} ms"


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(
            Path(tmp),
            [{"id": "echo", "command": stdio_argv("echo")}],
            codemode={"mode": "opt_in", "type_check": args.type_check},
            audit={"spool_dir": str(Path(tmp) / "spool")},
        )
        async with serve(settings) as served, httpx2.AsyncClient(timeout=60) as http:
            for engine in args.engine:
                code_url = f"{served.url}?codemode=search_and_execute&lang={engine}"
                bare: list[float] = []
                code: list[float] = []
                for i in range(20):  # warm-up: workers, connections, encodings
                    await timed(http, served.url, "echo__echo", {"text": "hi"}, i)
                    await timed(http, code_url, "execute", {"code": CODE[engine]}, i)
                n = 0
                for _ in range(args.calls // args.block):
                    for _ in range(args.block):
                        n += 1
                        bare.append(await timed(http, served.url, "echo__echo", {"text": "hi"}, n))
                    for _ in range(args.block):
                        n += 1
                        code.append(await timed(http, code_url, "execute", {"code": CODE[engine]}, n))
                added = statistics.median(code) - statistics.median(bare)
                print(f"{engine:<11} bare call     {summary(bare)}")
                print(f"{engine:<11} execute (1)   {summary(code)}")
                print(f"{engine:<11} Code Mode adds {added:6.2f} ms at p50 (target <= 10 ms)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--engine", action="append", choices=["javascript", "python"])
    parser.add_argument("--calls", type=int, default=300, help="calls of each kind per engine")
    parser.add_argument("--block", type=int, default=25, help="calls per alternating block")
    parser.add_argument("--type-check", action="store_true", help="codemode.type_check: true (Python engine)")
    args = parser.parse_args()
    args.engine = args.engine or ["javascript", "python"]
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))

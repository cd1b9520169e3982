"""Code Mode engine benchmark: what a sandboxed run costs, per engine.

For every engine in `ENGINES` (name → how to build it and two programs in its language):

* latency of a run with no host call and with one host call (the host function answers at once, so the whole
  latency is what the engine adds): p50/p95/mean over `--runs` sequential runs after a warm-up;
* cold start: a fresh engine's `start()` (its first sandbox ready) and its first run, over `--cold` engines;
* sandbox memory: RSS of every process the engine started (this process's descendants), idle, after the runs;
* CPU per one-call run: this process's (from /proc) and the sandbox's (`RunResult.cpu_s`, as the engine
  measures it; 0.0 when it cannot).

    .venv/bin/python bench/codemode_engines.py                     # every engine, 300 runs per phase
    .venv/bin/python bench/codemode_engines.py --engine javascript --runs 1000 --json

Each engine is built and closed inside its own section; nothing is shared between engines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from portico.codemode.engine import Engine, Limits, Program
from portico.codemode.js import JsEngine
from portico.codemode.python import PythonEngine

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class EngineSpec:
    factory: Callable[[], Engine]
    no_call: str  # a small program without host calls, returning 3
    one_call: str  # a program that awaits `codemode.echo({text: "hi"})` once and returns its result


ENGINES: dict[str, EngineSpec] = {
    "javascript": EngineSpec(
        factory=JsEngine,
        no_call="const a = [1, 2]\na[0] + a[1]",
        one_call='await codemode.echo({text: "hi"})',
    ),
    # The same engine with a fresh worker process for every run (`max_runs_per_worker=1`): the isolation
    # alternative the default trades for latency and CPU.
    "javascript-process-per-run": EngineSpec(
        factory=lambda: JsEngine(max_runs_per_worker=1),
        no_call="const a = [1, 2]\na[0] + a[1]",
        one_call='await codemode.echo({text: "hi"})',
    ),
    "python": EngineSpec(
        factory=PythonEngine,
        no_call="a = [1, 2]\na[0] + a[1]",
        one_call='await codemode.echo(text="hi")',
    ),
}


async def echo(args: dict[str, Any]) -> Any:
    return args


# ------------------------------------------------------------------------------------------------ processes


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.append(int(child))
            stack.append(int(child))
    return found


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# ------------------------------------------------------------------------------------------------ measurements


def summary(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 2),
        "mean_ms": round(1000 * statistics.fmean(ordered), 2),
        "n": len(ordered),
    }


async def timed_runs(engine: Engine, program: Program, runs: int) -> tuple[list[float], float]:
    """Latencies of `runs` sequential runs, and the sandbox CPU seconds the engine reported for them."""
    samples, sandbox_cpu = [], 0.0
    limits = Limits(wall_s=10.0)
    for _ in range(runs):
        started = time.perf_counter()
        result = await engine.run(program, limits)
        samples.append(time.perf_counter() - started)
        sandbox_cpu += result.cpu_s
        if not result.ok:
            raise SystemExit(f"{engine.name}: a benchmark run failed: {result.error}")
    return samples, sandbox_cpu


async def measure(name: str, spec: EngineSpec, runs: int, warmup: int, cold: int) -> dict[str, Any]:
    functions = {"echo": echo}
    no_call = Program(code=spec.no_call)
    one_call = Program(code=spec.one_call, functions=functions)

    starts, firsts = [], []
    for _ in range(cold):
        engine = spec.factory()
        began = time.perf_counter()
        await engine.start()
        started = time.perf_counter()
        await engine.run(no_call, Limits())
        firsts.append(time.perf_counter() - began)
        starts.append(started - began)
        await engine.aclose()

    engine = spec.factory()
    await engine.start()
    try:
        await timed_runs(engine, one_call, warmup)
        zero, _ = await timed_runs(engine, no_call, runs)
        own_before = cpu_ticks(os.getpid())
        one, boxes_cpu = await timed_runs(engine, one_call, runs)
        own_cpu = (cpu_ticks(os.getpid()) - own_before) / CLK_TCK
        await asyncio.sleep(0.5)  # let replacements and isolates settle before reading memory
        rss = [rss_bytes(pid) for pid in descendants(os.getpid())]
    finally:
        await engine.aclose()
    return {
        "engine": name,
        "no_call": summary(zero),
        "one_call": summary(one),
        "cold_start": {"start": summary(starts), "start_and_first_run": summary(firsts)},
        "sandbox_processes": len(rss),
        "sandbox_rss_mb": [round(value / 2**20, 1) for value in rss],
        "cpu_ms_per_one_call_run": {
            "gateway": round(1000 * own_cpu / runs, 2),
            "sandboxes": round(1000 * boxes_cpu / runs, 2),
        },
    }


def print_report(result: dict[str, Any]) -> None:
    print(f"\n== {result['engine']}")
    for phase in ("no_call", "one_call"):
        s = result[phase]
        print(f"  {phase:<10} p50 {s['p50_ms']:7.2f} ms   p95 {s['p95_ms']:7.2f} ms   mean {s['mean_ms']:7.2f} ms")
    cold = result["cold_start"]
    print(
        f"  cold start p50 {cold['start']['p50_ms']:.1f} ms (first sandbox ready), "
        f"{cold['start_and_first_run']['p50_ms']:.1f} ms with the first run"
    )
    cpu = result["cpu_ms_per_one_call_run"]
    print(f"  CPU per one-call run: gateway {cpu['gateway']} ms, sandboxes {cpu['sandboxes']} ms")
    print(f"  sandbox processes {result['sandbox_processes']}, RSS MB each {result['sandbox_rss_mb']}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", action="append", choices=sorted(ENGINES), help="default: all")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--cold", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [await measure(name, ENGINES[name], args.runs, args.warmup, args.cold) for name in args.engine or ENGINES]
    meta = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    print(f"Code Mode engines — {meta['when']}, Python {meta['python']}, {meta['cpus']} CPUs")
    for result in results:
        print_report(result)


if __name__ == "__main__":
    asyncio.run(main())

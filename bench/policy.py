"""Policy evaluation benchmark: µs per decision (uncached and cached) and ms to filter a 1,000-tool listing.

Pure CPU, in process, no servers: a policy of 24 rules (group permits per server, per-tool globs, MFA and device
conditions, named networks, a time window, forbids on destructive tools with an `unless`) over a catalog of
1,000 tools on 10 servers, judged for a few principals that see different slices of it.

* uncached: `decide(policy, request)`, requests prebuilt (the pure core alone), cycled over every tool.
* cached: `PolicyStage.decide(exchange)` with a warm cache: what a `tools/call` pays in the pipeline (building
  the request from the routed catalog entry, the cache key, one LRU probe).
* listing: `PolicyStage` on a `tools/list` exchange plus the catalog's own filtering of 1,000 entries by the
  visibility predicate it adds, per principal.

    .venv/bin/python bench/policy.py                 # defaults: 5 repeats, report the median
    .venv/bin/python bench/policy.py --repeats 9 --json
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio

from portico.catalog.catalog import Entry
from portico.policy import DecisionCache, PolicySettings, Request, compile_policy, decide
from portico.policy.model import device_state_of, effective_annotations
from portico.policy.stage import PolicyStage
from portico.types import Era, Exchange, Principal, Reply

SERVERS = [f"srv{i}" for i in range(10)]
VERBS = ["get", "list", "search", "create", "update", "delete", "sync", "export", "read", "write"]
WORKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00", "tz": "Europe/Berlin"}
NOW = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)  # a Wednesday, inside the time window


def build_policy() -> PolicySettings:
    rules: list[dict[str, Any]] = []
    for i, server in enumerate(SERVERS):
        rules.append({"id": f"team{i}-{server}", "effect": "permit", "servers": [server], "groups": [f"team{i}"]})
        rules.append({"id": f"readers-{server}", "effect": "permit", "servers": [server], "tools": ["get_*", "list_*"],
                      "groups": ["readers"], "mfa": True})  # fmt: skip
    rules += [
        {"id": "admins", "effect": "permit", "groups": ["admins"], "mfa": True, "device": "enrolled"},
        {"id": "on-call", "effect": "permit", "servers": ["srv9"], "groups": ["oncall"], "time": WORKDAYS},
        {"id": "no-destructive-off-site", "effect": "forbid", "annotations": {"destructiveHint": True},
         "unless": {"networks": ["office"], "device": "enrolled"}},
        {"id": "no-export-abroad", "effect": "forbid", "tools": ["export_*"], "networks": ["guest"]},
    ]  # fmt: skip
    return PolicySettings.model_validate(
        {"networks": {"office": ["10.20.0.0/16", "2001:db8::/48"], "guest": ["192.168.77.0/24"]}, "rules": rules}
    )


def build_catalog(count: int = 1000) -> list[Entry]:
    entries = []
    for i in range(count):
        server, verb = SERVERS[i % len(SERVERS)], VERBS[(i // len(SERVERS)) % len(VERBS)]
        name = f"{verb}_item{i}"
        readonly = verb in ("get", "list", "search", "read", "export")
        annotations = {"readOnlyHint": readonly, "destructiveHint": verb in ("delete", "write"), "title": name}
        definition = {"name": name, "inputSchema": {"type": "object"}, "annotations": annotations}
        entries.append(Entry(server, "tools", name, f"{server}__{name}", definition, definition))
    return entries


PRINCIPALS = {
    "team member": Principal("alice", frozenset({"team3"}), ip="10.20.1.5"),
    "reader with MFA": Principal("bob", frozenset({"readers"}), mfa=True, ip="192.168.77.9"),
    "admin, enrolled device": Principal(
        "carol", frozenset({"admins"}), mfa=True, device_id="d1", ip="10.20.3.3", claims={"device_state": "enrolled"}
    ),
    "nobody": Principal("mallory", frozenset({"guests"}), ip="203.0.113.7"),
}


def request_for(principal: Principal, entry: Entry) -> Request:
    annotations = effective_annotations("tools", entry.definition["annotations"])
    return Request(principal, entry.server_id, "tools", entry.name, NOW, device_state_of(principal), annotations)


def exchange_for(principal: Principal, method: str, entry: Entry | None = None) -> Exchange:
    exchange = Exchange(method, {}, 1, principal, Era.MODERN, "2026-07-28")
    if entry is not None:
        exchange.server_id, exchange.target = entry.server_id, entry.name
        exchange.notes["entry"] = entry
    return exchange


def per_op_us(run: Callable[[], int], repeats: int) -> float:
    """Median over `repeats` of (time of one run / operations in it), in µs."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        ops = run()
        samples.append((time.perf_counter_ns() - start) / ops / 1000)
    return statistics.median(samples)


def bench(repeats: int) -> dict[str, Any]:
    policy = compile_policy(build_policy())
    catalog = build_catalog()
    principals = list(PRINCIPALS.values())
    requests = [request_for(p, e) for p in principals for e in catalog]

    def uncached() -> int:
        for request in requests:
            decide(policy, request)
        return len(requests)

    stage = PolicyStage(lambda: policy, lambda: NOW, max_cached=len(requests) + 1)
    calls = [exchange_for(p, "tools/call", e) for p in principals for e in catalog]
    for exchange in calls:
        stage.decide(exchange)  # warm

    def cached() -> int:
        for exchange in calls:
            stage.decide(exchange)
        return len(calls)

    results: dict[str, Any] = {
        "rules": len(policy.rules),
        "tools": len(catalog),
        "uncached_decision_us": per_op_us(uncached, repeats),
        "cached_decision_us": per_op_us(cached, repeats),
        "cache_hit_ratio": stage.cache.hits / max(1, stage.cache.hits + stage.cache.misses),
        "listing_ms": {},
    }

    async def terminal(exchange: Exchange) -> Reply:  # what CatalogStage does with the predicates
        predicates = exchange.notes.get("visible", [])
        shown = [e for e in catalog if all(p(e) for p in predicates)]
        return Reply.ok({"tools": shown})

    async def listing(principal: Principal) -> tuple[float, int]:
        samples, visible = [], 0
        for _ in range(repeats):
            start = time.perf_counter_ns()
            reply = await stage(exchange_for(principal, "tools/list"), terminal)
            samples.append((time.perf_counter_ns() - start) / 1e6)
            visible = len(reply.result["tools"]) if reply.result else 0
        return statistics.median(samples), visible

    for label, principal in PRINCIPALS.items():
        ms, visible = anyio.run(listing, principal)
        results["listing_ms"][label] = {"ms": ms, "visible": visible}
    # decide() and the listing agree, tool by tool (a benchmark of a wrong answer is worth nothing)
    for principal in principals:
        exchange = exchange_for(principal, "tools/list")
        anyio.run(stage, exchange, terminal)
        [predicate] = exchange.notes["visible"]
        fresh = DecisionCache()
        for entry in catalog:
            assert predicate(entry) == fresh.decide(policy, request_for(principal, entry)).allowed, entry.name
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Policy evaluation: µs per decision, ms per 1,000-tool listing.")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    results = bench(args.repeats)
    command = shlex.join([".venv/bin/python", "bench/policy.py", *(argv if argv is not None else sys.argv[1:])])
    results["command"] = command
    results["python"] = platform.python_version()
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"$ {command}    (Python {results['python']}, median of {args.repeats})")
    print(f"policy: {results['rules']} rules; catalog: {results['tools']} tools on {len(SERVERS)} servers")
    print(f"uncached decision  {results['uncached_decision_us']:8.2f} µs   decide(policy, request)")
    print(f"cached decision    {results['cached_decision_us']:8.2f} µs   PolicyStage.decide(exchange), warm cache")
    for label, row in results["listing_ms"].items():
        print(f"list 1,000 tools   {row['ms']:8.2f} ms   {label} (sees {row['visible']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""DLP scan benchmark: MB/s of JSON scanned per core, and latency of one ~2 KB tool call.

Pure CPU, in process. The corpus is generated deterministically: MCP-shaped tool calls and results mixing
prose, ids, timestamps, UUIDs, git SHAs, amounts, version strings and URLs, with a secret or PII value in about
one message in twenty. Throughput counts the bytes of the JSON serialisation of what was scanned.

    .venv/bin/python bench/dlp.py                 # defaults: 5 repeats, report the median
    .venv/bin/python bench/dlp.py --repeats 9 --json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import uuid
from typing import Any

from portico.dlp import Scanner

WORDS = [
    "the",
    "request",
    "was",
    "processed",
    "by",
    "the",
    "upstream",
    "server",
    "and",
    "the",
    "result",
    "returned",
    "to",
    "the",
    "client",
    "after",
    "policy",
    "checks",
    "customer",
    "invoice",
    "shipment",
    "order",
    "status",
    "pending",
    "delivered",
    "account",
    "report",
    "quarterly",
    "revenue",
    "forecast",
    "meeting",
    "notes",
    "summary",
    "action",
    "items",
    "deployment",
    "pipeline",
    "build",
    "release",
    "branch",
    "merge",
    "review",
    "approved",
    "rejected",
]
SECRETS = [
    "card 4111 1111 1111 1111",
    "contact jane.doe@example.com",
    "key AKIAIOSFODNN7EXAMPLE",
    "IBAN DE89 3704 0044 0532 0130 00",
    "call +1 415 555 2671",
    "ssn 536-22-1234",
]


def prose(rng: random.Random, n: int) -> str:
    parts = []
    for _ in range(n):
        r = rng.random()
        if r < 0.04:
            parts.append(f"#{rng.randint(100000, 99999999)}")
        elif r < 0.06:
            parts.append(str(uuid.UUID(int=rng.getrandbits(128))))
        elif r < 0.08:
            parts.append(f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:{rng.randint(0, 59):02d}:00Z")
        elif r < 0.09:
            parts.append(f"{rng.getrandbits(160):040x}")
        elif r < 0.10:
            parts.append(f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}")
        elif r < 0.11:
            parts.append(f"${rng.randint(1, 9999)}.{rng.randint(0, 99):02d}")
        else:
            parts.append(rng.choice(WORDS))
    return " ".join(parts)


def message(rng: random.Random, target_bytes: int) -> dict[str, Any]:
    text = prose(rng, target_bytes // 7)
    if rng.random() < 0.05:
        cut = rng.randint(0, len(text))
        text = f"{text[:cut]} {rng.choice(SECRETS)} {text[cut:]}"
    return {
        "jsonrpc": "2.0",
        "id": rng.randint(1, 10**6),
        "method": "tools/call",
        "params": {
            "name": "crm.search_orders",
            "arguments": {"query": prose(rng, 8), "limit": 50, "since": "2026-01-01", "tags": ["eu", "b2b"]},
            "_meta": {"progressToken": str(uuid.UUID(int=rng.getrandbits(128)))},
        },
        "result": {"content": [{"type": "text", "text": text}], "isError": False},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--megabytes", type=float, default=4.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rng = random.Random(7)
    scanner = Scanner()
    corpus = []
    size = 0
    while size < args.megabytes * 1_000_000:
        m = message(rng, rng.choice([600, 2000, 8000, 30000]))
        corpus.append(m)
        size += len(json.dumps(m))
    call = message(random.Random(11), 1500)
    call_bytes = len(json.dumps(call))

    rates = []
    findings = 0
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        findings = sum(len(scanner.scan(m)) for m in corpus)
        rates.append(size / 1e6 / (time.perf_counter() - t0))
    n = 2000
    lat = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            scanner.scan(call)
        lat.append((time.perf_counter() - t0) / n * 1e3)
    result = {
        "corpus_mb": round(size / 1e6, 2),
        "messages": len(corpus),
        "findings": findings,
        "mb_per_s_median": round(statistics.median(rates), 1),
        "call_bytes": call_bytes,
        "call_ms_median": round(statistics.median(lat), 4),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"corpus: {result['corpus_mb']} MB in {len(corpus)} messages, {findings} findings")
        print(f"throughput: {result['mb_per_s_median']} MB/s (median of {args.repeats})")
        print(f"one {call_bytes}-byte tool call: {result['call_ms_median']} ms (median of {args.repeats} x {n})")


if __name__ == "__main__":
    main()

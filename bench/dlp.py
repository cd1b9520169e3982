"""DLP scan benchmark: MB/s of JSON scanned per core, and latency of one ~2 KB tool call.

Pure CPU, in process, default detectors, decoding on. Corpora are generated deterministically, MCP-shaped
(`tools/call` envelopes with arguments and results), with a secret or PII value in about one message in twenty:

* `prose` (the original corpus): text results of prose with ids, timestamps, UUIDs, git SHAs, amounts and
  version strings (~11% of tokens).
* `mixed` (default): the tool traffic of an agent, by bytes roughly a quarter each of prose results (as above),
  JSON record results (orders with ids, UUIDs, order numbers, timestamps, amounts, short notes; returned as
  `structuredContent` and, as the MCP spec asks, serialised again in a text block), source code and log
  excerpts (file reads: identifiers, paths, URLs, hex, versions, request ids), and base64 (image content and
  resource blobs of binary data, plus small base64-encoded text attachments).

Throughput counts the bytes of the JSON serialisation of what was scanned; it is reported on wall time and on
process CPU time (the machine is shared: CPU time is the steadier measure of one core's work). Latency is for one
~2 KB prose call (the original one; it happens to carry an IBAN, so two numeric detectors and stdnum's IBAN
validation run on it) and one ~2 KB call returning JSON records.

    .venv/bin/python bench/dlp.py                 # defaults: mixed corpus, 5 repeats, report min and median
    .venv/bin/python bench/dlp.py --corpus prose  # the original corpus, comparable with earlier results
    .venv/bin/python bench/dlp.py --repeats 9 --json
"""

from __future__ import annotations

import argparse
import base64
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


FIRST = ["Jane", "Omar", "Li", "Sofia", "Kwame", "Anna", "Ravi", "Marta", "Tom", "Yuki", "Pierre", "Ines"]
LAST = ["Doe", "Haddad", "Wei", "Rossi", "Mensah", "Berg", "Patel", "Nowak", "Baker", "Sato", "Martin", "Silva"]
COMPANIES = ["Acme GmbH", "Northwind Traders", "Globex Ltd", "Initech", "Umbrella BV", "Stark Industries"]
STATUSES = ["pending", "paid", "shipped", "delivered", "refunded", "cancelled"]
CODE = [
    "import { useEffect, useState } from 'react';",
    "from portico.dlp.detectors.linear import LinearPattern",
    "def build_pipeline(settings: Settings, *, clock: Clock | None = None) -> Pipeline:",
    "    return [Finding(self.name, m.start(), m.end()) for m in self.pattern.finditer(text)]",
    "const API_BASE = process.env.API_BASE ?? 'https://api.example.com/v2';",
    "  if (response.status === 429) { await sleep(backoffMs * 2 ** attempt); continue; }",
    '    retries: int = Field(3, ge=0, le=10, description="Attempts before giving up")',
    "SELECT o.id, o.order_no, o.total_cents FROM orders o WHERE o.created_at > $1 ORDER BY o.id LIMIT 50;",
    "    color: #3b82f6; margin: 0 auto; max-width: 1200px; font-family: Inter, sans-serif;",
    "export async function fetchOrders(customerId: string, page = 1): Promise<Order[]> {",
    '    logger.info("upstream %s answered in %.1f ms", upstream.name, elapsed * 1e3)',
    "RUN pip install --no-cache-dir -r requirements.txt && rm -rf /root/.cache/pip",
    "      - uses: actions/setup-python@v5",
    "  version: 3.11.7  # pinned; see /usr/local/lib/python3.11/site-packages/portico/__init__.py",
    '    assert resp.json()["items"][0]["sku"] == "SKU-00412-BLK"',
    "}",
    "",
]


def uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128)))


def timestamp(rng: random.Random) -> str:
    day = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return (
        f"{day}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z"
    )


def order(rng: random.Random) -> dict[str, Any]:
    return {
        "id": f"ord_{rng.getrandbits(64):016x}",
        "uuid": uid(rng),
        "order_no": f"SO-2026-{rng.randint(1, 999999):06d}",
        "created_at": timestamp(rng),
        "updated_at": timestamp(rng),
        "status": rng.choice(STATUSES),
        "customer": {
            "id": rng.randint(10000, 9999999),
            "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "company": rng.choice(COMPANIES),
        },
        "total": round(rng.uniform(5, 5000), 2),
        "currency": rng.choice(["EUR", "USD", "GBP"]),
        "items": [
            {"sku": f"SKU-{rng.randint(0, 99999):05d}-{rng.choice(['BLK', 'WHT', 'RED'])}", "qty": rng.randint(1, 9)}
            for _ in range(rng.randint(1, 3))
        ],
        "note": prose(rng, rng.randint(0, 12)),
    }


def code(rng: random.Random, target_bytes: int) -> str:
    lines: list[str] = []
    size = 0
    while size < target_bytes:
        r = rng.random()
        if r < 0.7:
            line = rng.choice(CODE)
        elif r < 0.85:
            line = (
                f"{timestamp(rng)} INFO request_id={uid(rng)} path=/api/v1/orders/{rng.randint(1, 99999)} "
                f"status=200 duration_ms={rng.randint(1, 900)}"
            )
        else:
            line = f"    # {prose(rng, rng.randint(4, 14))}"
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def envelope(rng: random.Random, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rng.randint(1, 10**6),
        "method": "tools/call",
        "params": {
            "name": rng.choice(["crm.search_orders", "fs.read_file", "docs.fetch", "shop.list_orders"]),
            "arguments": {"query": prose(rng, 8), "limit": 50, "since": "2026-01-01", "tags": ["eu", "b2b"]},
            "_meta": {"progressToken": uid(rng)},
        },
        "result": result,
    }


def plant(rng: random.Random, text: str) -> str:
    """About one message in twenty carries a secret or PII value somewhere in its text."""
    if rng.random() < 0.05:
        cut = rng.randint(0, len(text))
        return f"{text[:cut]} {rng.choice(SECRETS)} {text[cut:]}"
    return text


def mixed_message(rng: random.Random, target_bytes: int) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.25:
        return message(rng, target_bytes)
    if kind < 0.5:
        orders = []
        while len(json.dumps(orders)) < target_bytes / 2:
            orders.append(order(rng))
        if rng.random() < 0.05:
            planted = orders[rng.randrange(len(orders))]
            planted["note"] = f"{planted['note']} {rng.choice(SECRETS)}"
        structured = {"orders": orders, "next_cursor": base64.urlsafe_b64encode(rng.randbytes(18)).decode()}
        text = json.dumps(structured)
        return envelope(rng, {"content": [{"type": "text", "text": text}], "structuredContent": structured})
    if kind < 0.75:
        text = plant(rng, code(rng, target_bytes))
        return envelope(rng, {"content": [{"type": "text", "text": text}], "isError": False})
    blob = base64.b64encode(rng.randbytes(int(target_bytes * 0.7))).decode()
    attachment = base64.b64encode(plant(rng, prose(rng, 30)).encode()).decode()
    content = [
        {"type": "text", "text": f"Exported {rng.randint(1, 40)} pages; attachment {attachment}"},
        {"type": "image", "data": blob, "mimeType": "image/png"},
    ]
    return envelope(rng, {"content": content, "isError": False})


def records_call(rng: random.Random, target_bytes: int) -> dict[str, Any]:
    orders = []
    while len(json.dumps(orders)) < target_bytes / 2:
        orders.append(order(rng))
    structured = {"orders": orders}
    return envelope(
        rng, {"content": [{"type": "text", "text": json.dumps(structured)}], "structuredContent": structured}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=["mixed", "prose"], default="mixed")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--megabytes", type=float, default=4.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rng = random.Random(7)
    make = mixed_message if args.corpus == "mixed" else message
    scanner = Scanner()
    corpus = []
    size = 0
    while size < args.megabytes * 1_000_000:
        m = make(rng, rng.choice([600, 2000, 8000, 30000]))
        corpus.append(m)
        size += len(json.dumps(m))

    wall: list[float] = []
    cpu: list[float] = []
    findings = 0
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        findings = sum(len(scanner.scan(m)) for m in corpus)
        wall.append(size / 1e6 / (time.perf_counter() - t0))
        cpu.append(size / 1e6 / (time.process_time() - c0))

    calls = {"prose": message(random.Random(11), 1500), "records": records_call(random.Random(11), 1000)}
    n = 2000
    latency: dict[str, list[float]] = {}
    latency_cpu: dict[str, list[float]] = {}
    for label, call in calls.items():
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                scanner.scan(call)
            latency.setdefault(label, []).append((time.perf_counter() - t0) / n * 1e3)
            latency_cpu.setdefault(label, []).append((time.process_time() - c0) / n * 1e3)

    result = {
        "corpus": args.corpus,
        "corpus_mb": round(size / 1e6, 2),
        "messages": len(corpus),
        "findings": findings,
        "mb_per_s_min": round(min(wall), 1),
        "mb_per_s_median": round(statistics.median(wall), 1),
        "cpu_mb_per_s_median": round(statistics.median(cpu), 1),
    }
    for label, call in calls.items():
        result[f"{label}_call_bytes"] = len(json.dumps(call))
        result[f"{label}_call_ms_median"] = round(statistics.median(latency[label]), 4)
        result[f"{label}_call_ms_max"] = round(max(latency[label]), 4)
        result[f"{label}_call_cpu_ms_median"] = round(statistics.median(latency_cpu[label]), 4)
    if args.json:
        print(json.dumps(result))
        return
    print(f"corpus {args.corpus}: {result['corpus_mb']} MB in {len(corpus)} messages, {findings} findings")
    print(
        f"throughput: {result['mb_per_s_median']} MB/s median, {result['mb_per_s_min']} min"
        f" (wall, {args.repeats} runs); {result['cpu_mb_per_s_median']} MB/s per CPU second"
    )
    for label in calls:
        print(
            f"one {result[f'{label}_call_bytes']}-byte {label} call: {result[f'{label}_call_ms_median']} ms median,"
            f" {result[f'{label}_call_ms_max']} max (wall, {args.repeats} x {n});"
            f" {result[f'{label}_call_cpu_ms_median']} ms CPU"
        )


if __name__ == "__main__":
    main()

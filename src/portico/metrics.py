"""Prometheus metrics: calls, errors and latency per server and method. An observer: it never fails a call."""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from portico.types import CallNext, Exchange, Outcome, Reply

log = logging.getLogger("portico.metrics")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "portico_exchanges_total",
            "JSON-RPC requests handled",
            ["server", "method", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "portico_exchange_seconds",
            "Time to answer a JSON-RPC request",
            ["server", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_up = Gauge(
            "portico_upstream_up", "1 when the upstream is connected and ready", ["server"], registry=self.registry
        )
        self.catalog_tools = Gauge(
            "portico_catalog_tools", "Tools listed per upstream", ["server"], registry=self.registry
        )
        self.auth_refusals = Counter(
            "portico_auth_refusals_total",
            "MCP requests refused before the pipeline for want of a valid access token",
            ["error"],
            registry=self.registry,
        )

        self.inspection_verdicts = Counter(
            "portico_inspection_verdicts_total",
            "Messages scored by content inspection, by verdict (pass, flag, annotate, block, error) and direction",
            ["action", "direction"],
            registry=self.registry,
        )
        self.public_throttled = Counter(
            "portico_public_throttled_total",
            "Anonymous requests to a public server refused for exceeding the per-address rate limit",
            ["server"],
            registry=self.registry,
        )

        self.dlp_findings = Counter(
            "portico_dlp_findings_total",
            "Sensitive values found by DLP rules, by detector, the action taken and direction (request, response)",
            ["detector", "action", "direction"],
            registry=self.registry,
        )

        self.codemode_runs = Counter(
            "portico_codemode_runs_total",
            "Code Mode runs, by engine, tool (search, execute) and outcome (ok or the error kind)",
            ["engine", "tool", "outcome"],
            registry=self.registry,
        )
        self.codemode_tokens = Gauge(
            "portico_codemode_tool_list_tokens",
            "cl100k tokens of the whole tool list of a URL (portal = /mcp), native and in Code Mode",
            ["portal", "surface"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsStage:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        # `.labels()` costs a lock and a tuple build per call; the label sets are few, so keep the children.
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    async def __call__(self, exchange: Exchange, call_next: CallNext) -> Reply:
        start = time.perf_counter()
        outcome = Outcome.ERROR
        try:
            reply = await call_next(exchange)
            outcome = reply.outcome
            return reply
        finally:
            try:
                server = exchange.server_id or exchange.scope or "portal"
                key = (server, exchange.method)
                counter = self._counters.get((*key, outcome.value))
                if counter is None:
                    counter = self._counters[(*key, outcome.value)] = self._metrics.calls.labels(*key, outcome.value)
                histogram = self._histograms.get(key)
                if histogram is None:
                    histogram = self._histograms[key] = self._metrics.latency.labels(*key)
                counter.inc()
                histogram.observe(time.perf_counter() - start)
            except Exception:  # an observer may fail alone, never the call
                log.exception("metrics: recording failed")

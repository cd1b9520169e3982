"""The per-request envelope of the 2026-07-28 wire, added for modern upstreams and removed for legacy ones."""

from __future__ import annotations

from portico.types import JSON, Exchange
from portico.upstream.model import PORTICO_CLIENT_INFO

MODERN_VERSION = "2026-07-28"
LEGACY_VERSION = "2025-11-25"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPS = "io.modelcontextprotocol/clientCapabilities"
META_INFO = "io.modelcontextprotocol/clientInfo"
META_LOG_LEVEL = "io.modelcontextprotocol/logLevel"
ENVELOPE_KEYS = frozenset({META_VERSION, META_CAPS, META_INFO, META_LOG_LEVEL})
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


def log_level_allows(threshold: str | None, message: JSON) -> bool:
    """Whether a `notifications/message` passes a client's `logging/setLevel` threshold (RFC 5424 order)."""
    if threshold not in LOG_LEVELS:
        return True
    params = message.get("params")
    level = params.get("level") if isinstance(params, dict) else None
    return level not in LOG_LEVELS or LOG_LEVELS.index(level) >= LOG_LEVELS.index(threshold)


def modern_params(exchange: Exchange | None, params: JSON) -> JSON:
    """Params with the 2026-07-28 per-request envelope, carrying the calling client's own capabilities."""
    meta = dict(params.get("_meta") or {})
    meta[META_VERSION] = MODERN_VERSION
    if exchange is not None:
        meta[META_CAPS] = exchange.client_capabilities
        meta[META_INFO] = exchange.client_info or PORTICO_CLIENT_INFO
        if exchange.log_level is not None:
            meta.setdefault(META_LOG_LEVEL, exchange.log_level)
    else:
        meta.setdefault(META_CAPS, {})
        meta.setdefault(META_INFO, PORTICO_CLIENT_INFO)
    return {**params, "_meta": meta}


def legacy_params(params: JSON) -> JSON:
    meta = params.get("_meta")
    if not isinstance(meta, dict) or not ENVELOPE_KEYS.intersection(meta):
        return params
    rest = {k: v for k, v in meta.items() if k not in ENVELOPE_KEYS}
    out = {k: v for k, v in params.items() if k != "_meta"}
    if rest:
        out["_meta"] = rest
    return out

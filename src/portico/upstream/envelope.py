"""The per-request envelope of the 2026-07-28 wire, added for modern upstreams and removed for legacy ones."""

from __future__ import annotations

from portico.types import JSON, Exchange
from portico.upstream.model import PORTICO_CLIENT_INFO

MODERN_VERSION = "2026-07-28"
LEGACY_VERSION = "2025-11-25"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPS = "io.modelcontextprotocol/clientCapabilities"
META_INFO = "io.modelcontextprotocol/clientInfo"
ENVELOPE_KEYS = frozenset({META_VERSION, META_CAPS, META_INFO, "io.modelcontextprotocol/logLevel"})


def modern_params(exchange: Exchange | None, params: JSON) -> JSON:
    """Params with the 2026-07-28 per-request envelope, carrying the calling client's own capabilities."""
    meta = dict(params.get("_meta") or {})
    meta[META_VERSION] = MODERN_VERSION
    if exchange is not None:
        meta[META_CAPS] = exchange.client_capabilities
        meta[META_INFO] = exchange.client_info or PORTICO_CLIENT_INFO
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

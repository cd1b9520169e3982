"""Builders for the policy tests: a compiled policy from plain rule dicts, principals, requests, catalog entries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from portico.catalog.catalog import Entry, Kind
from portico.policy import CompiledPolicy, PolicySettings, Request, compile_policy
from portico.policy.model import device_state_of, effective_annotations
from portico.policy.settings import PolicyKind
from portico.types import Principal

# Wednesday 2026-03-04 10:30 UTC = 11:30 in Berlin (CET).
WEDNESDAY = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)
NETWORKS = {"office": ["10.20.0.0/16", "2001:db8:20::/48"], "vpn": ["172.16.0.0/12"], "guest": ["192.168.77.0/24"]}


def compiled(
    *rules: dict[str, Any], default: str = "deny", networks: dict[str, list[str]] | None = None
) -> CompiledPolicy:
    settings = {"default": default, "networks": NETWORKS if networks is None else networks, "rules": list(rules)}
    return compile_policy(PolicySettings.model_validate(settings))


def who(subject: str = "alice", *groups: str, device: str | None = None, **fields: Any) -> Principal:
    """A principal; `device="enrolled"` / `"revoked"` / `"unknown"` gives it a device in that state."""
    claims = dict(fields.pop("claims", {}))
    if "country" in fields:
        claims["country"] = fields.pop("country")
    if device is not None:
        fields["device_id"] = "dev-1"
        claims["device_state"] = device
    return Principal(subject=subject, groups=frozenset(groups), claims=claims, **fields)


def ask(
    principal: Principal,
    server: str = "github",
    name: str = "search",
    *,
    kind: PolicyKind = "tools",
    annotations: dict[str, Any] | None = None,
    now: datetime = WEDNESDAY,
) -> Request:
    """A request; a tool's `annotations` are given raw, as the upstream sent them (None: it declared none)."""
    effective = effective_annotations(kind, annotations)
    return Request(principal, server, kind, name, now, device_state_of(principal), effective)


def tool(server: str, name: str, annotations: dict[str, Any] | None = None, kind: Kind = "tools") -> Entry:
    definition: dict[str, Any] = {"name": name, "inputSchema": {"type": "object"}}
    if annotations is not None:
        definition["annotations"] = annotations
    return Entry(server, kind, name, f"{server}__{name}", definition, {**definition, "name": f"{server}__{name}"})

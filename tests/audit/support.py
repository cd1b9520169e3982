"""Helpers for the audit tests: exchanges, bulk appends, and raw SQL (the tools of a real attacker)."""

from __future__ import annotations

from typing import Any

import anyio
from sqlalchemy import select, text

from portico.audit import AuditLog, AuditRecord
from portico.audit.verify import record_from_row
from portico.store import Store
from portico.store.tables import audit_records
from portico.types import Era, Exchange, Principal


def make_exchange(method: str = "tools/call", arguments: Any = None, **fields: Any) -> Exchange:
    params: dict[str, Any] = {"name": "gh__search"}
    if arguments is not None:
        params["arguments"] = arguments
    fields.setdefault("principal", Principal(subject="alice@example.com", client_id="cursor", ip="10.0.0.7"))
    return Exchange(method=method, params=params, request_id=1, era=Era.LEGACY, protocol_version="2025-11-25", **fields)


def append_many(log: AuditLog, count: int, prefix: str = "x", **fields: Any) -> list[str]:
    """Append `count` varied records; return their exchange ids."""
    ids = []
    for i in range(count):
        ids.append(f"{prefix}{i}")
        values: dict[str, Any] = {
            "subject": f"user{i % 3}",
            "method": "tools/call",
            "outcome": "ok" if i % 4 else "denied",
            "target": f"tool{i % 5}",
            "server_id": "gh",
            "decision": "allow" if i % 4 else "deny",
            "latency_us": 1000 + i,
            "request_bytes": 100 + i,
            "response_bytes": 10 * i,
            "arg_keys": ["q"],
        }
        values.update(fields)
        log.append(id=f"{prefix}{i}", **values)
    return ids


async def flushed(log: AuditLog) -> None:
    with anyio.fail_after(30):
        await log.flush()


async def records(store: Store, node: str | None = None) -> list[AuditRecord]:
    stmt = select(audit_records).order_by(audit_records.c.node, audit_records.c.seq)
    if node is not None:
        stmt = stmt.where(audit_records.c.node == node)
    async with store.engine.connect() as conn:
        return [record_from_row(row) for row in (await conn.execute(stmt)).all()]


async def sql(store: Store, statement: str, **params: Any) -> None:
    """Run raw SQL and commit: tampering as someone with database access would."""
    async with store.engine.begin() as conn:
        await conn.execute(text(statement), params)

"""Reading what a Portico served in another thread (`serve_in_thread`) wrote to its audit log and metrics.

The audit log's store belongs to that Portico's event loop, so the test reads the SQLite file itself (WAL lets a
reader in beside the writer) after waiting, bounded, for the background flusher to commit what was appended.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import httpx2

from tests.support.portico import Running
from tests.support.waits import eventually


def audit_rows(running: Running, target: str) -> list[dict[str, Any]]:
    """Every audit record of a call to `target` (the upstream's own name), oldest first: the record's subject,
    authenticated_by, server_id, outcome and `extra` (parsed)."""
    path = running.portico.settings.store.sqlite_path
    assert path is not None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT subject, authenticated_by, server_id, outcome, extra FROM audit_records WHERE target = ? "
            "ORDER BY node, seq",
            (target,),
        ).fetchall()
    return [
        {
            "subject": subject,
            "authenticated_by": by,
            "server": server,
            "outcome": outcome,
            **((json.loads(extra) if extra else None) or {}),  # SQL NULL and JSON null: no extra
        }
        for subject, by, server, outcome, extra in rows
    ]


async def last_audit(running: Running, target: str) -> dict[str, Any]:
    """The newest audit record of a call to `target`, once every record appended so far is in the database (a
    reply leaves only after its record is spooled, so a finished call's record is among them)."""
    audit = running.portico.audit
    assert audit is not None
    await eventually(lambda: audit.pending == 0, 10, 0.02)
    return audit_rows(running, target)[-1]


async def metric_lines(running: Running, prefix: str) -> list[str]:
    async with httpx2.AsyncClient() as http:
        body = (await http.get(f"{running.base}/metrics")).text
    return [line for line in body.splitlines() if line.startswith(prefix)]

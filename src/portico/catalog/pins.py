"""Tool pinning: the rug-pull guard between an upstream's tool list and what callers see.

An upstream may change a tool's description or schema at any time after it was approved ("rug pull": a benign
`weather` tool that later tells the model to read `~/.ssh/id_rsa`). Portico pins each approved definition by
`pin_hash` (canonical JSON of name, title, description, schemas and annotations) in the store (`tool_pins`)
and serves a tool only while the upstream still sends exactly that definition. Otherwise the tool is *held*:

    new       never approved: waits for `portico tools approve` (or is pinned on sight, see below)
    changed   differs from its approved definition: quarantined until an administrator re-approves it

Held tools are hidden from every listing and refused when called (`PinStage`), with a message that says why.
Every definition Portico sees is also run through the tool-poisoning scan (`portico.inspection.poisoning`);
its findings are stored with the definition, shown by `portico tools diff`, and a blocking finding stops trust
on first use and stops `portico tools approve` unless the administrator explicitly accepts the findings.

`servers[].pinning` decides what is pinned without review: `initial: trust` pins the first tool list Portico
sees of a server (each tool the scan passes), `new_tools: trust` pins tools that appear later the same way.
`review` pins nothing on its own.

The store is the source of truth, shared by replicas and by the CLI: the CLI approves what a running Portico
recorded as seen (`seen_*` columns; the approval is conditional on the hash the administrator reviewed), and
every running Portico re-reads the pinned hashes every `catalog.pin_sync_interval_s` (`PinBook.sync`), so an
approval takes effect everywhere within that interval without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import anyio
import orjson
from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from portico.audit.log import AuditLog
from portico.catalog.pin_tables import MAX_TOOL_CHARS, tool_pins
from portico.catalog.settings import PinningSettings
from portico.errors import DeniedError, PorticoError
from portico.inspection.model import Finding, Severity
from portico.inspection.poisoning import ScanOptions, blocks, pin_hash, scan_tool
from portico.store.db import Store, StoreError
from portico.types import JSON

log = logging.getLogger("portico.catalog.pins")

TRUSTED_BY = "portico (trust on first use)"


class Hold(StrEnum):
    """Why a tool is not served."""

    NEW = "new"  # never approved
    CHANGED = "changed"  # its definition differs from the approved one


class QuarantinedError(DeniedError):
    """A call to a held tool. The message names the tool and why, and tells the caller it is an admin matter."""

    default_public = "This tool is held for review by an administrator"


class ApprovalError(PorticoError):
    """`approve` refused: nothing to approve, the definition moved on, or the scan found something."""

    default_public = "Not approved"


@dataclass(frozen=True, slots=True)
class PinRecord:
    """One row of `tool_pins`, decoded."""

    server_id: str
    tool: str
    seen_hash: str
    seen_definition: JSON
    seen_at: datetime
    findings: tuple[Finding, ...]
    pinned_hash: str | None = None
    pinned_definition: JSON | None = None
    pinned_at: datetime | None = None
    pinned_by: str | None = None

    @property
    def hold(self) -> Hold | None:
        if self.pinned_hash == self.seen_hash:
            return None
        return Hold.NEW if self.pinned_hash is None else Hold.CHANGED

    @property
    def blocking(self) -> bool:
        return blocks(list(self.findings))


@dataclass(slots=True)
class Approval:
    """What `PinBook.approve` did: tools pinned, and tools refused with the reason."""

    approved: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def findings_json(findings: Iterable[Finding]) -> str:
    return orjson.dumps(
        [{"code": f.code, "severity": f.severity.value, "where": f.where, "reason": f.reason} for f in findings]
    ).decode()


def _findings(text: str) -> tuple[Finding, ...]:
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError:
        return ()
    return tuple(
        Finding(str(i.get("code")), Severity(i.get("severity", "warn")), str(i.get("where")), str(i.get("reason")))
        for i in items
        if isinstance(i, dict)
    )


def _record(row: Any) -> PinRecord:
    return PinRecord(
        server_id=row.server_id,
        tool=row.tool,
        seen_hash=row.seen_hash,
        seen_definition=orjson.loads(row.seen_definition),
        seen_at=_utc(row.seen_at),
        findings=_findings(row.findings),
        pinned_hash=row.pinned_hash,
        pinned_definition=orjson.loads(row.pinned_definition) if row.pinned_definition is not None else None,
        pinned_at=_utc(row.pinned_at) if row.pinned_at is not None else None,
        pinned_by=row.pinned_by,
    )


def _utc(value: datetime) -> datetime:
    """SQLite hands timezone-aware columns back naive; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class PinBook:
    """The pins of every server, cached in memory, kept in the store.

    `observe` is called by the catalog with each server's fresh tool list and records what it saw; `hold`
    answers, without I/O, whether a tool may be served; `sync` picks up approvals made elsewhere.
    """

    def __init__(
        self,
        store: Store,
        audit: AuditLog | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._pinned: dict[str, dict[str, str | None]] = {}  # server → tool → approved pin hash
        self._seen: dict[str, dict[str, str]] = {}  # server → tool → pin hash last recorded as seen
        self._lock = anyio.Lock()  # `observe` and `sync` never interleave (a sync must not undo an observe)

    # ------------------------------------------------------------------------------------- serving

    def hold(self, server_id: str, tool: str, digest: str) -> Hold | None:
        """Why the definition of `tool` whose `pin_hash` is `digest` must not be served, or None when it is
        exactly the approved one. A tool never approved is new."""
        pinned = self._pinned.get(server_id, {}).get(tool)
        if pinned == digest:
            return None
        return Hold.NEW if pinned is None else Hold.CHANGED

    async def load(self) -> None:
        """Read every pin (at start-up, before the catalog is first filled)."""
        async with self._lock:
            self._pinned, self._seen = await self._read_all()

    async def sync(self) -> set[str]:
        """Re-read the pins; return the servers for which some approval changed (made by the CLI or a replica)."""
        async with self._lock:
            pinned, seen = await self._read_all()
            changed = {s for s in set(pinned) | set(self._pinned) if pinned.get(s) != self._pinned.get(s)}
            self._pinned, self._seen = pinned, seen
        return changed

    async def observe(
        self, server_id: str, settings: PinningSettings, tools: Sequence[Mapping[str, Any]], other_tools: Iterable[str]
    ) -> None:
        """Record `server_id`'s current tool list: new definitions are scanned and stored, pinned on sight when
        the server's settings trust them and the scan passes; changed ones are held and audited."""
        async with self._lock:
            seen = self._seen.setdefault(server_id, {})
            pinned = self._pinned.setdefault(server_id, {})
            first_sighting = not seen
            options = ScanOptions(other_tools=frozenset(other_tools))
            for definition in tools:
                name = definition.get("name")
                if not isinstance(name, str) or len(name) > MAX_TOOL_CHARS:
                    continue
                digest = pin_hash(definition)
                if seen.get(name) == digest:
                    continue
                findings = scan_tool(definition, options)
                trust = settings.initial if first_sighting else settings.new_tools
                pin = pinned.get(name) is None and trust == "trust" and not blocks(findings)
                pinned[name] = await self._write_seen(server_id, name, definition, digest, findings, name in seen, pin)
                seen[name] = digest
                self._report(server_id, name, digest, pinned[name], findings)

    def _report(self, server_id: str, tool: str, digest: str, pinned: str | None, findings: list[Finding]) -> None:
        hold = None if pinned == digest else Hold.NEW if pinned is None else Hold.CHANGED
        codes = sorted({f.code for f in findings})
        if hold is None:
            if self._audit is not None:
                self._audit.event(
                    "catalog.pin",
                    "ok",
                    subject="portico",
                    server_id=server_id,
                    target=tool,
                    extra={"hash": digest, "findings": codes},
                )
            return
        log.warning(
            "catalog: %s tool %r held (%s)%s: review with `portico tools diff %s`",
            server_id,
            tool,
            hold.value,
            f", scan findings {', '.join(codes)}" if codes else "",
            server_id,
        )
        if self._audit is not None:
            self._audit.event(
                "catalog.quarantine",
                "denied",
                subject="portico",
                server_id=server_id,
                target=tool,
                reason=f"tool {hold.value}" + (f"; scan findings {', '.join(codes)}" if codes else ""),
                extra={"hold": hold.value, "hash": digest, "pinned": pinned, "findings": codes},
            )

    async def _write_seen(
        self,
        server_id: str,
        tool: str,
        definition: Mapping[str, Any],
        digest: str,
        findings: list[Finding],
        recorded: bool,
        pin: bool,
    ) -> str | None:
        """Store what was seen (pinning it when `pin`); return the tool's pinned hash afterwards."""
        now = self._clock()
        seen = {
            "seen_hash": digest,
            "seen_definition": orjson.dumps(definition).decode(),
            "seen_at": now,
            "findings": findings_json(findings),
        }
        pinned = {"pinned_hash": digest, "pinned_definition": seen["seen_definition"], "pinned_at": now}
        pinned["pinned_by"] = TRUSTED_BY
        try:
            async with self._store.engine.begin() as conn:
                if not recorded:
                    try:
                        async with conn.begin_nested():
                            values = {"server_id": server_id, "tool": tool, **seen, **(pinned if pin else {})}
                            await conn.execute(insert(tool_pins).values(values))
                        return digest if pin else None
                    except IntegrityError:
                        pass  # another replica recorded it first: update that row instead
                where = and_(tool_pins.c.server_id == server_id, tool_pins.c.tool == tool)
                row = (await conn.execute(select(tool_pins.c.pinned_hash).where(where))).first()
                pinned_hash = row.pinned_hash if row is not None else None
                values = dict(seen)
                if pin and pinned_hash is None:
                    values.update(pinned)
                    pinned_hash = digest
                await conn.execute(update(tool_pins).where(where).values(values))
                return str(pinned_hash) if pinned_hash is not None else None
        except SQLAlchemyError as exc:
            raise StoreError("Could not record tool definitions", detail=str(exc)) from exc

    async def _read_all(self) -> tuple[dict[str, dict[str, str | None]], dict[str, dict[str, str]]]:
        columns = (tool_pins.c.server_id, tool_pins.c.tool, tool_pins.c.pinned_hash, tool_pins.c.seen_hash)
        try:
            async with self._store.engine.connect() as conn:
                rows = (await conn.execute(select(*columns))).all()
        except SQLAlchemyError as exc:
            raise StoreError("Could not read tool pins", detail=str(exc)) from exc
        pinned: dict[str, dict[str, str | None]] = {}
        seen: dict[str, dict[str, str]] = {}
        for row in rows:
            pinned.setdefault(row.server_id, {})[row.tool] = row.pinned_hash
            seen.setdefault(row.server_id, {})[row.tool] = row.seen_hash
        return pinned, seen

    # --------------------------------------------------------------------------------- administration

    async def records(self, server_id: str, tool: str | None = None) -> list[PinRecord]:
        """Every recorded tool of `server_id` (or just `tool`), by name."""
        query = select(tool_pins).where(tool_pins.c.server_id == server_id).order_by(tool_pins.c.tool)
        if tool is not None:
            query = query.where(tool_pins.c.tool == tool)
        try:
            async with self._store.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        except SQLAlchemyError as exc:
            raise StoreError("Could not read tool pins", detail=str(exc)) from exc
        return [_record(row) for row in rows]

    async def approve(self, record: PinRecord, by: str, *, accept_findings: bool = False) -> None:
        """Pin `record`'s seen definition — exactly the one the administrator reviewed.

        Raises:
            ApprovalError: it is already pinned, the scan blocks it (unless `accept_findings`), or the upstream's
                definition changed again since `record` was read (review the new diff).
        """
        if record.hold is None:
            raise ApprovalError(f"{record.tool}: already approved")
        if record.blocking and not accept_findings:
            codes = ", ".join(sorted({f.code for f in record.findings if f.severity is Severity.BLOCK}))
            raise ApprovalError(f"{record.tool}: the poisoning scan blocks it ({codes}); --accept-findings overrides")
        where = and_(
            tool_pins.c.server_id == record.server_id,
            tool_pins.c.tool == record.tool,
            tool_pins.c.seen_hash == record.seen_hash,
        )
        values = {
            "pinned_hash": tool_pins.c.seen_hash,
            "pinned_definition": tool_pins.c.seen_definition,
            "pinned_at": self._clock(),
            "pinned_by": by[:255],
        }
        try:
            async with self._store.engine.begin() as conn:
                result = await conn.execute(update(tool_pins).where(where).values(values))
        except SQLAlchemyError as exc:
            raise StoreError("Could not approve the tool", detail=str(exc)) from exc
        if result.rowcount != 1:
            raise ApprovalError(f"{record.tool}: its definition changed again while you reviewed it; diff it again")
        self._pinned.setdefault(record.server_id, {})[record.tool] = record.seen_hash


def quarantined(public_name: str, hold: Hold) -> QuarantinedError:
    """The error a caller of a held tool gets: what happened, and that an administrator must act."""
    if hold is Hold.CHANGED:
        why = "its definition changed since an administrator approved it, so it is quarantined until re-approved"
    else:
        why = "it is new and waits for an administrator's approval"
    return QuarantinedError(f"Tool {public_name} is unavailable: {why}")

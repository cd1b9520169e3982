"""The aggregated catalog: every upstream's tools, prompts, resources and resource templates.

Each server's lists are fetched whole (following `nextCursor`) when it connects, when it says `list_changed`,
and on a timer. Portal names are `<server id><separator><name>` for tools and prompts; resource URIs are kept
unless two servers claim the same one, in which case the later server's (in config order) is addressed as
`portico://<server id>/<quoted uri>`. Names that would break the tool-name grammar (≤128 of [A-Za-z0-9._-])
are shortened with a stable hash suffix. Every entry keeps the upstream's definition untouched, byte for byte,
apart from the name.

With pinning on for a server (`portico.catalog.pins`), each fresh tool list is recorded in the `PinBook` before
it is published, and every tool entry carries its `held` state: a held tool stays in the catalog (so a call to
it gets a clear refusal rather than "unknown tool") but `PinStage` hides it and refuses calls to it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, unquote

import anyio

from portico.catalog.pins import Hold, PinBook
from portico.catalog.settings import PinningSettings
from portico.config import CatalogSettings
from portico.inspection.poisoning import pin_hash
from portico.types import JSON, Era, Exchange
from portico.upstream.base import Upstream
from portico.upstream.pool import UpstreamPool

log = logging.getLogger("portico.catalog")

Kind = Literal["tools", "prompts", "resources", "resourceTemplates"]
KINDS: tuple[Kind, ...] = ("tools", "prompts", "resources", "resourceTemplates")
_LIST_METHOD: dict[Kind, str] = {
    "tools": "tools/list",
    "prompts": "prompts/list",
    "resources": "resources/list",
    "resourceTemplates": "resources/templates/list",
}
_CAPABILITY: dict[Kind, str] = {
    "tools": "tools",
    "prompts": "prompts",
    "resources": "resources",
    "resourceTemplates": "resources",
}
_NAME_OK = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
MAX_PAGES = 100
ChangeListener = Callable[[str, frozenset[Kind]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Entry:
    """One tool, prompt, resource or template of one server."""

    server_id: str
    kind: Kind
    name: str  # the upstream's own name (or URI / URI template)
    public: str  # the portal's name (or URI)
    definition: JSON  # as the upstream sent it
    portal_definition: JSON  # the same with the portal name
    held: Hold | None = None  # pinning: why this tool must not be served (None: it may)


@dataclass(slots=True)
class _ServerLists:
    entries: dict[Kind, list[Entry]] = field(default_factory=lambda: {k: [] for k in KINDS})
    raw: dict[Kind, list[JSON]] = field(default_factory=lambda: {k: [] for k in KINDS})


class Catalog:
    def __init__(self, pool: UpstreamPool, settings: CatalogSettings, order: Iterable[str]) -> None:
        self._pool = pool
        self._settings = settings
        self._order = list(order)
        self._lists: dict[str, _ServerLists] = {}
        self._portal: dict[Kind, list[Entry]] = {k: [] for k in KINDS}
        self._by_public: dict[Kind, dict[str, Entry]] = {k: {} for k in KINDS}
        self._by_server: dict[str, dict[Kind, dict[str, Entry]]] = {}
        self._listeners: list[ChangeListener] = []
        self._dirty: dict[str, anyio.Event] = {}
        self._pins: PinBook | None = None
        self._pinning: dict[str, PinningSettings] = {}
        self.version = 0

    def guard(self, pins: PinBook, pinning: dict[str, PinningSettings]) -> None:
        """Pin the tools of every server whose settings in `pinning` have it enabled."""
        self._pins = pins
        self._pinning = {server_id: p for server_id, p in pinning.items() if p.enabled}

    # ---------------------------------------------------------------------------------------- queries

    def entries(self, kind: Kind, scope: str | None) -> list[Entry]:
        if scope is None:
            return self._portal[kind]
        lists = self._lists.get(scope)
        return lists.entries[kind] if lists is not None else []

    def resolve(self, kind: Kind, scope: str | None, name: str) -> Entry | None:
        """The entry the client means by `name` (portal name on /mcp, upstream name on a per-server URL)."""
        if scope is None:
            return self._by_public[kind].get(name)
        return self._by_server.get(scope, {}).get(kind, {}).get(name)

    def resolve_resource(self, scope: str | None, uri: str) -> tuple[str, str] | None:
        """(server id, upstream URI) for a resource URI: a listed resource, else a matching template."""
        entry = self.resolve("resources", scope, uri)
        if entry is not None:
            return entry.server_id, entry.name
        if scope is not None:
            return (scope, uri) if scope in self._lists else None
        if uri.startswith("portico://"):
            server_id, _, rest = uri.removeprefix("portico://").partition("/")
            if server_id in self._lists:
                return server_id, unquote(rest)
        for template in self._portal["resourceTemplates"]:
            if template_matches(template.name, uri):
                return template.server_id, uri
        return None

    # ---------------------------------------------------------------------------------------- refresh

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    async def refresh(self, upstream: Upstream) -> frozenset[Kind]:
        """Re-list one server; returns the kinds that changed (and tells the listeners)."""
        lists = _ServerLists()
        if upstream.ready and upstream.info is not None:
            for kind in KINDS:
                if _CAPABILITY[kind] in upstream.info.capabilities:
                    lists.raw[kind] = await self._fetch_all(upstream, kind)
        old = self._lists.get(upstream.id)
        changed = frozenset(k for k in KINDS if old is None or old.raw[k] != lists.raw[k])
        if not changed:
            return changed
        pinning = self._pinning.get(upstream.id)
        if self._pins is not None and pinning is not None and "tools" in changed:
            others = {e.name for e in self._portal["tools"] if e.server_id != upstream.id}
            await self._pins.observe(upstream.id, pinning, lists.raw["tools"], others)
        self._lists[upstream.id] = lists
        self._rebuild()
        log.info("catalog: %s changed %s (version %d)", upstream.id, sorted(changed), self.version)
        await self._tell(upstream.id, changed)
        return changed

    async def reapply_pins(self, server_ids: Iterable[str]) -> None:
        """Approvals changed the holds of these servers' tools (`PinBook.sync`): republish their tools."""
        affected = [s for s in server_ids if s in self._lists and s in self._pinning]
        if not affected:
            return
        self._rebuild()
        for server_id in affected:
            log.info("catalog: %s tool approvals changed (version %d)", server_id, self.version)
            await self._tell(server_id, frozenset({"tools"}))

    async def _tell(self, server_id: str, changed: frozenset[Kind]) -> None:
        for listener in self._listeners:
            await listener(server_id, changed)

    async def _fetch_all(self, upstream: Upstream, kind: Kind) -> list[JSON]:
        items: list[JSON] = []
        cursor: str | None = None
        era = Era.MODERN if upstream.info is not None and Era.MODERN in upstream.info.eras else Era.LEGACY
        for _ in range(MAX_PAGES):
            exchange = Exchange.internal(_LIST_METHOD[kind], era)
            params: JSON = {"cursor": cursor} if cursor else {}
            response = await upstream.request(exchange, _LIST_METHOD[kind], params)
            result = response.get("result")
            if not isinstance(result, dict):
                log.warning("catalog: %s %s failed: %s", upstream.id, _LIST_METHOD[kind], response.get("error"))
                return items
            page = result.get(kind)
            if isinstance(page, list):
                items.extend(item for item in page if isinstance(item, dict))
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                return items
        log.warning("catalog: %s %s: more than %d pages; truncated", upstream.id, _LIST_METHOD[kind], MAX_PAGES)
        return items

    def _rebuild(self) -> None:
        """Recompute entries and indexes for every server (config order decides collisions)."""
        sep = self._settings.separator
        taken: dict[Kind, dict[str, Entry]] = {k: {} for k in KINDS}
        by_server: dict[str, dict[Kind, dict[str, Entry]]] = {}
        portal: dict[Kind, list[Entry]] = {k: [] for k in KINDS}
        for server_id in [s for s in self._order if s in self._lists]:
            lists = self._lists[server_id]
            by_server[server_id] = {k: {} for k in KINDS}
            for kind in KINDS:
                lists.entries[kind] = []
                for raw in lists.raw[kind]:
                    key = "uriTemplate" if kind == "resourceTemplates" else ("uri" if kind == "resources" else "name")
                    name = raw.get(key)
                    if not isinstance(name, str) or name in by_server[server_id][kind]:
                        continue
                    public = _public_name(kind, server_id, name, sep, taken[kind])
                    portal_definition = raw if public == name else {**raw, key: public}
                    held = self._held(server_id, kind, name, raw)
                    entry = Entry(server_id, kind, name, public, raw, portal_definition, held)
                    lists.entries[kind].append(entry)
                    by_server[server_id][kind][name] = entry
                    taken[kind][public] = entry
                    portal[kind].append(entry)
        self._by_public, self._by_server, self._portal = taken, by_server, portal
        self.version += 1

    def _held(self, server_id: str, kind: Kind, name: str, definition: JSON) -> Hold | None:
        if kind != "tools" or self._pins is None or server_id not in self._pinning:
            return None
        return self._pins.hold(server_id, name, pin_hash(definition))

    def forget(self, server_id: str) -> None:
        self._lists.pop(server_id, None)
        self._rebuild()


def _public_name(kind: Kind, server_id: str, name: str, sep: str, taken: dict[str, Entry]) -> str:
    if kind in ("resources", "resourceTemplates"):
        if name not in taken:
            return name
        return f"portico://{server_id}/{quote(name, safe='')}"
    public = f"{server_id}{sep}{name}"
    if not _NAME_OK.match(public) or public in taken:
        digest = hashlib.sha256(f"{server_id}\0{name}".encode()).hexdigest()[:8]
        clean = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        public = f"{server_id}{sep}{clean}"[: 128 - 9] + f"-{digest}"
    return public


_TEMPLATE_VAR = re.compile(r"\{[^}]*\}")


def template_matches(template: str, uri: str) -> bool:
    """Whether `uri` is an expansion of the RFC 6570 `template` (simple and reserved expansions)."""
    pattern = ""
    last = 0
    for match in _TEMPLATE_VAR.finditer(template):
        pattern += re.escape(template[last : match.start()])
        pattern += ".+" if match.group(0)[1:2] in ("+", "#") else "[^/]+"
        last = match.end()
    pattern += re.escape(template[last:])
    return re.fullmatch(pattern, uri) is not None

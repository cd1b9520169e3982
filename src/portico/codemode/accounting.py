"""Token accounting: what a URL's tool list costs a model natively, and what the two Code Mode tools cost instead.

Counted with the offline cl100k counter (`portico.codemode.tokens`) over the whole catalog of each URL — the
portal `/mcp` and every `/servers/<id>/mcp` — as a caller allowed everything would receive it. A caller's own
list, after policy, is at most that. Exposed as the `portico_codemode_tool_list_tokens` gauge and by
`portico codemode stats`.
"""

from __future__ import annotations

from dataclasses import dataclass

from portico.catalog.catalog import Catalog
from portico.codemode.settings import CodeModeSettings
from portico.codemode.tokens import count_tool_list
from portico.codemode.tools import codemode_tools

PORTAL = "/mcp"


@dataclass(frozen=True, slots=True)
class PortalTokens:
    portal: str  # "/mcp" or "/servers/<id>/mcp"
    tools: int
    native: int
    javascript: int
    python: int

    def saved(self, codemode: int) -> float:
        """The share of the native list's tokens Code Mode saves (0 when there is nothing to save)."""
        return max(0.0, 1 - codemode / self.native) if self.native else 0.0


def portal_tokens(catalog: Catalog, servers: list[str], settings: CodeModeSettings) -> list[PortalTokens]:
    """Token counts of the portal and of each server's own URL (servers in config order)."""
    names, limits = settings.tool_names, settings.limits
    javascript = count_tool_list(codemode_tools("javascript", names, limits))
    python = count_tool_list(codemode_tools("python", names, limits))
    rows = []
    portal = [e.portal_definition for e in catalog.entries("tools", None)]
    rows.append(PortalTokens(PORTAL, len(portal), count_tool_list(portal), javascript, python))
    for server_id in servers:
        tools = [e.definition for e in catalog.entries("tools", server_id)]
        rows.append(PortalTokens(f"/servers/{server_id}/mcp", len(tools), count_tool_list(tools), javascript, python))
    return rows

"""Plain values describing an upstream's state."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from portico import __version__
from portico.types import JSON, Era

PORTICO_CLIENT_INFO: JSON = {"name": "portico", "title": "Portico MCP gateway", "version": __version__}
PORTAL_INFO: JSON = {"name": "portico", "title": "Portico MCP portal", "version": __version__}
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"

# What Portico declares to legacy upstreams: it can relay sampling, elicitation and roots to the client that
# made the call (and answers with an error when that client cannot take them).
PORTICO_CLIENT_CAPABILITIES: JSON = {
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
    "roots": {"listChanged": True},
}


class Health(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    DOWN = "down"  # not connected; reconnecting with backoff
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class UpstreamInfo:
    """What the upstream told us about itself when we connected."""

    server_info: JSON
    capabilities: JSON
    instructions: str | None
    protocol_version: str
    eras: frozenset[Era]


@dataclass(slots=True)
class HealthReport:
    state: Health = Health.STARTING
    last_error: str | None = None
    connects: int = 0
    restarts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> JSON:
        body: JSON = {"state": self.state.value, "connects": self.connects, "restarts": self.restarts}
        if self.last_error:
            body["last_error"] = self.last_error
        body.update(self.extra)
        return body

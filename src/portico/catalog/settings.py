"""`servers[].pinning`: how a server's tool definitions are pinned and what needs an administrator's approval.

    servers:
      - id: github
        url: https://api.githubcopilot.com/mcp/
        pinning: {initial: review, new_tools: review}

Pure settings; `portico.catalog.pins` applies them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Approval = Literal["trust", "review"]


class PinningSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True,
        description="Pin this server's tool definitions (name, title, description, schemas, annotations) by "
        "hash. A pinned tool whose definition later changes is quarantined (hidden, uncallable) until "
        "`portico tools approve`. Off: definitions are served as the upstream sends them.",
    )
    initial: Approval = Field(
        "trust",
        description="The first time Portico sees this server: `trust` pins every tool the poisoning scan passes "
        "(a tool with blocking findings waits for review); `review` pins nothing until an administrator "
        "approves the server's tools.",
    )
    new_tools: Approval = Field(
        "trust",
        description="A tool that appears after the server was first pinned: `trust` pins it on sight if the "
        "poisoning scan passes; `review` keeps it hidden until approved.",
    )

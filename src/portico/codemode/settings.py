"""The `codemode:` section of `portico.yaml`: when Code Mode is on, which engine runs the code, and its limits.

    codemode:
      mode: opt_in            # off | opt_in | default_on | enforced
      engine: javascript      # javascript (V8) | python (Monty); a client may ask ?lang=python where allowed
      limits: {wall_s: 60, max_calls: 50}

Modes, as Cloudflare's portals: `off` ignores `?codemode=`; `opt_in` turns Code Mode on for a request whose URL
says `?codemode=search_and_execute`; `default_on` turns it on unless the URL says `?codemode=off`; `enforced`
turns it on whatever the URL says.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Mode = Literal["off", "opt_in", "default_on", "enforced"]
EngineName = Literal["javascript", "python"]
_TOOL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeModeLimits(_Model):
    cpu_s: float = Field(10.0, gt=0, le=600, description="CPU time one `execute` run may use.")
    wall_s: float = Field(60.0, gt=0, le=3600, description="Wall time of one `execute` run, tool calls included.")
    search_wall_s: float = Field(5.0, gt=0, le=600, description="Wall time of one `search` run.")
    memory_mb: int = Field(64, gt=0, le=4096, description="Heap one run may use, in MiB.")
    max_calls: int = Field(50, ge=0, le=10_000, description="Tool calls one `execute` run may make.")
    max_log_bytes: int = Field(64 * 1024, gt=0, description="console.log / print output kept per run.")
    max_result_chars: int = Field(
        24_000,
        gt=0,
        description="The reply's text is cut here (~6,000 tokens) with a marker telling the model to narrow its query.",
    )


class CodeModeNames(_Model):
    search: str = Field("search", description="Name of the search tool.")
    execute: str = Field("execute", description="Name of the execute tool.")

    @field_validator("search", "execute")
    @classmethod
    def _tool_name(cls, value: str) -> str:
        if not _TOOL_NAME.match(value):
            raise ValueError("must be 1-64 of [A-Za-z0-9._-] (the MCP tool-name grammar)")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> CodeModeNames:
        if self.search == self.execute:
            raise ValueError("`search` and `execute` need different names")
        return self


CLOUDFLARE_NAMES = CodeModeNames(search="portal_codemode_search", execute="portal_codemode_execute")


class CodeModeSettings(_Model):
    mode: Mode = Field(
        "off",
        description="`off`, `opt_in` (`?codemode=search_and_execute` turns it on), `default_on` (`?codemode=off` "
        "turns it off) or `enforced` (always on).",
    )
    engine: EngineName = Field("javascript", description="The language the model writes: javascript (V8) or python.")
    allow_engine_choice: bool = Field(
        True, description="Let a client choose the other engine with `?lang=javascript|python` on the URL."
    )
    names: CodeModeNames = Field(default_factory=CodeModeNames, description="The two tools' names.")
    cloudflare_names: bool = Field(
        False,
        description="Name the tools `portal_codemode_search` / `portal_codemode_execute`, as Cloudflare's portals "
        "do (overrides `names`).",
    )
    limits: CodeModeLimits = Field(default_factory=CodeModeLimits, description="Per-run sandbox limits.")
    workers: int = Field(4, ge=1, le=256, description="Sandbox worker processes per engine at most (concurrent runs).")
    runs_per_caller: int = Field(
        2,
        ge=1,
        le=256,
        description="Runs one caller may have in progress at once (per process); more are refused with a `limit` "
        "error, so one caller cannot hold every sandbox. Anonymous callers count per client address.",
    )
    type_check: bool = Field(
        False,
        description="Python engine: check the code's tool calls against typed stubs before it runs, so a wrong "
        "name or argument fails before any call has had a side effect. Costs ~16 ms per run; off, arguments are "
        "still validated against each tool's schema at the call, and the reply lists the calls that completed.",
    )

    @property
    def tool_names(self) -> CodeModeNames:
        return CLOUDFLARE_NAMES if self.cloudflare_names else self.names

"""The `inspection:` config section (the prompt-injection WAF) and `servers[].public` (public-server mode).

    inspection:
      flag_at: 0.5                 # a message scoring at least this is suspect: `on_suspect` (annotate or flag)
      block_at: 0.8                # at least this: blocked (null: never block, watch only)
      on_suspect: annotate
      learned: off                 # the optional learned classifier: auto (if installed), on (required), off
      servers:
        wiki: {block_at: 0.6, arguments: true}
    servers:
      - id: docs
        url: https://docs.example/mcp
        public:                    # or `public: true` for the defaults
          rate_limit: {requests_per_minute: 60, burst: 20}
          max_body_bytes: 65536

The default thresholds come from `bench/injection.py`. At 0.5 the heuristic flags 103 of the tuned set's 107
injections with one false positive in 108 benign texts (precision 0.99, recall 0.96); at 0.8 it blocks an
explicit override of earlier instructions, or two strong signals together, and no benign text of either data
file (precision 1.0, recall 0.50 on the tuned set). The holdout shows how little the heuristic catches of
phrasing it was not written for (recall 0.08 at 0.5, 0 at 0.8): recall on unseen phrasing rests on the learned
layer; the heuristic's job is to be cheap and nearly free of false blocks.

Validated here; `InspectionSettings.profile` resolves one server's effective settings. Server ids named under
`inspection.servers` are checked against `servers:` when the stage is built (`portico.inspection.stage`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from portico.dlp.settings import SECRETS

Suspect = Literal["annotate", "flag"]
LearnedMode = Literal["auto", "on", "off"]
Oversize = Literal["edges", "block"]

# DLP detectors whose findings a public server may never return: credentials and keys (names from
# `portico.dlp.default_detectors`). Personal data is left to the operator (add `card`, `iban`, `us_ssn`, …).
CREDENTIAL_DETECTORS: tuple[str, ...] = SECRETS  # the DLP `secrets` family, one list for both


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_thresholds(flag_at: float, block_at: float | None, where: str) -> None:
    if block_at is not None and flag_at > block_at:
        raise ValueError(f"{where}flag_at ({flag_at}) must not be above block_at ({block_at})")


class ServerInspection(_Section):
    """Per-server overrides of `inspection`; an omitted key inherits the section's value."""

    enabled: bool | None = Field(None, description="Inspect this server's traffic at all (public servers: always).")
    arguments: bool | None = Field(
        None, description="Score inbound tool and prompt arguments too (always on for a public server)."
    )
    flag_at: float | None = Field(None, ge=0.0, le=1.0, description="This server's suspect threshold.")
    block_at: float | None = Field(
        None, ge=0.0, le=1.0, description="This server's block threshold (write `null` to never block here)."
    )
    on_suspect: Suspect | None = Field(None, description="What a suspect message of this server gets.")


@dataclass(frozen=True, slots=True)
class Profile:
    """The effective inspection settings for one server (or the portal's own answers: `server` None)."""

    enabled: bool
    arguments: bool
    tool_results: bool
    resources: bool
    prompts: bool
    flag_at: float
    block_at: float | None
    on_suspect: Suspect
    public: bool


class InspectionSettings(_Section):
    """Prompt-injection scoring of what upstreams send to the model (and, where enabled, what callers send)."""

    enabled: bool = Field(
        True,
        description="Score tool results, resource contents and prompt messages for prompt injection (a public "
        "server's traffic is inspected whatever this says).",
    )
    tool_results: bool = Field(
        True, description="Score `tools/call` results: text, embedded resources, links, structuredContent."
    )
    resources: bool = Field(True, description="Score `resources/read` contents (text, and small text blobs).")
    prompts: bool = Field(True, description="Score `prompts/get` messages and description.")
    arguments: bool = Field(
        False,
        description="Score inbound `tools/call` and `prompts/get` arguments on every server (a public server's "
        "are always scored). An inbound message is blocked at `block_at` and flagged at `flag_at`.",
    )
    flag_at: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="A message scoring at least this is suspect and gets `on_suspect`: passed, audited and counted.",
    )
    block_at: float | None = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="A message scoring at least this is blocked: the caller gets a JSON-RPC error (-32001) naming "
        "the signals, never the text. `null`: never block (watch only).",
    )
    on_suspect: Suspect = Field(
        "annotate",
        description="`annotate`: pass the result with a warning the model reads (a first text content item, a "
        'first resource content, or a first prompt message) plus `_meta["dev.portico/inspection"]`; `flag`: '
        "pass it unchanged. Both are audited and counted.",
    )
    learned: LearnedMode = Field(
        "off",
        description="The learned classifier (`portico.inspection.learned`, the `ml` extra): `auto` uses it when "
        "installed, `on` refuses to start without it, `off` never loads it. With it, a message's score is the "
        "higher of the heuristic's and the classifier's. Off by default: opt in once its false positives on "
        "your traffic are acceptable (bench/injection.py --compare) and its latency (about 15 ms per short text, "
        "up to a second for 8 KB on one core) fits.",
    )
    max_scored_chars: int = Field(
        32_768,
        ge=1_024,
        description="Most characters of one message (its texts joined) that are scored. A longer message is "
        "scored on its first and last halves of this (`oversize: edges`, noted as signal `oversize`) or blocked "
        "(`oversize: block`).",
    )
    oversize: Oversize = Field("edges", description="What happens to a message longer than `max_scored_chars`.")
    servers: dict[str, ServerInspection] = Field(
        default_factory=dict, description="Per-server overrides, by server id."
    )

    @model_validator(mode="after")
    def _coherent(self) -> InspectionSettings:
        _check_thresholds(self.flag_at, self.block_at, "")
        for server_id in self.servers:
            profile = self.profile(server_id, public=False)
            _check_thresholds(profile.flag_at, profile.block_at, f"servers.{server_id}: ")
        return self

    def profile(self, server_id: str | None, *, public: bool) -> Profile:
        """The effective settings for `server_id`: its overrides over the section's values. A public server is
        always inspected, arguments included."""
        override = self.servers.get(server_id) if server_id is not None else None
        block_at = self.block_at
        if override is not None and "block_at" in override.model_fields_set:
            block_at = override.block_at
        enabled = self.enabled if override is None or override.enabled is None else override.enabled
        arguments = self.arguments if override is None or override.arguments is None else override.arguments
        return Profile(
            enabled=enabled or public,
            arguments=arguments or public,
            tool_results=self.tool_results or public,
            resources=self.resources or public,
            prompts=self.prompts or public,
            flag_at=self.flag_at if override is None or override.flag_at is None else override.flag_at,
            block_at=block_at,
            on_suspect=self.on_suspect if override is None or override.on_suspect is None else override.on_suspect,
            public=public,
        )


class RateLimitSettings(_Section):
    """Requests per client address to one public server, as a token bucket."""

    requests_per_minute: float = Field(
        60.0, gt=0, description="Sustained rate per client address (one token every 60/this seconds)."
    )
    burst: int = Field(20, ge=1, description="Requests a client address may make at once before the rate applies.")
    ipv6_prefix: int = Field(
        64,
        ge=32,
        le=128,
        description="IPv6 clients are counted per network of this prefix length (a /64 is one subscriber).",
    )
    max_tracked_addresses: int = Field(
        100_000, ge=1, description="Most client addresses remembered per server (the longest idle are forgotten)."
    )


class PublicSettings(_Section):
    """A server reachable without signing in at its own URL (`/servers/<id>/mcp`), even with `auth: oauth`.

    Anonymous callers there are rate-limited per client address (HTTP 429 with Retry-After), limited to a small
    request body (413), may use only what a policy rule naming the user `anonymous` permits, and every message
    of the server is inspected: arguments scored for prompt injection, results scanned for credentials. The
    portal `/mcp` and every other server's URL still need a token; a caller with a token is treated as itself.
    `public: true` takes the defaults.
    """

    enabled: bool = Field(
        True, description="`false` keeps the settings but serves the server to signed-in callers only."
    )
    rate_limit: RateLimitSettings = Field(
        default_factory=RateLimitSettings, description="Per-client-address request limit for anonymous callers."
    )
    max_body_bytes: int = Field(
        64 * 1024,
        gt=0,
        description="Largest request body an anonymous caller may send (else 413); never above http.max_body_bytes.",
    )
    leak_detectors: list[str] = Field(
        default_factory=lambda: list(CREDENTIAL_DETECTORS),
        description="DLP detectors (names from `portico.dlp`) whose finding in anything this server answers blocks "
        "the answer: by default every credential and key detector.",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {"enabled": value}
        return value

    @field_validator("leak_detectors")
    @classmethod
    def _known_detectors(cls, value: list[str]) -> list[str]:
        from portico.dlp import default_detectors  # only when the key is written: the detectors are built here

        known = {detector.name for detector in default_detectors()}
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"unknown DLP detector {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return value

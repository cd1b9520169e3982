"""The `policy:` section of `portico.yaml`: named networks and the rules, as the operator writes them.

Validated here, compiled once by `portico.policy.model.compile_policy`. Every error names its key
(``rules[2].time.tz: unknown time zone 'Europe/Berln'``); the central loader adds the section and the line.

    policy:
      default: deny
      networks: {office: [10.20.0.0/16]}
      rules:
        - id: eng-github
          effect: permit
          servers: [github]
          groups: [eng]
          mfa: true
        - id: no-destructive-off-site
          effect: forbid
          annotations: {destructiveHint: true}
          unless: {networks: [office], device: enrolled}
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PolicyKind = Literal["tools", "prompts", "resources"]
POLICY_KINDS: tuple[PolicyKind, ...] = ("tools", "prompts", "resources")
RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # no dots: `policy.default` is never a rule
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _not_empty(values: list[str] | None) -> list[str] | None:
    """An empty list would match nothing, silently; omitting the key is how a rule says "any"."""
    if values is not None and (not values or any(not v for v in values)):
        raise ValueError("must list at least one non-empty value (omit the key to match any)")
    return values


class TimeWindow(_Model):
    """When a rule holds: on these days, from `start` (inclusive) to `end` (exclusive), in `tz`.

    A window whose `end` is earlier than its `start` runs past midnight: `days` names the day it starts on.
    """

    days: list[Day] = Field(default_factory=lambda: list(DAYS), description="Days of the week (mon … sun).")
    start: str = Field("00:00", description="Start of the window, HH:MM, inclusive.")
    end: str = Field("24:00", description="End of the window, HH:MM, exclusive (24:00 = end of day).")
    tz: str = Field("UTC", description="IANA time zone the window is written in, e.g. Europe/Berlin.")

    @field_validator("days")
    @classmethod
    def _some_days(cls, value: list[Day]) -> list[Day]:
        if not value:
            raise ValueError("must list at least one day (omit the key for every day)")
        return value

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError("must be HH:MM (00:00 to 23:59; 24:00 for the end of the day)")
        return value

    @field_validator("tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _not_empty_window(self) -> TimeWindow:
        if self.start == self.end:
            raise ValueError("start and end must differ (00:00 to 24:00 is the whole day)")
        if self.start == "24:00":
            raise ValueError("start must be 00:00 to 23:59")
        return self


class Conditions(_Model):
    """Facts about the caller that must all hold; an omitted key matches any caller."""

    users: list[str] | None = Field(None, description="Subject globs, e.g. `alice@example.com`, `*@example.com`.")
    groups: list[str] | None = Field(None, description="Group names; the caller must be in at least one.")
    mfa: bool = Field(False, description="`true`: the caller must have signed in with a second factor.")
    device: Literal["enrolled"] | None = Field(
        None, description="`enrolled`: the call must come from an enrolled device (a revoked one never counts)."
    )
    networks: list[str] | None = Field(
        None, description="Names from `policy.networks`; the caller's IP must be in one of them."
    )
    countries: list[str] | None = Field(
        None, description="ISO 3166-1 alpha-2 codes, e.g. `DE`; the caller's country must be one of them."
    )
    time: TimeWindow | None = Field(None, description="A weekly time window the call must fall in.")
    clients: list[str] | None = Field(None, description="OAuth client_id globs the calling client must match.")

    @field_validator("users", "groups", "networks", "clients")
    @classmethod
    def _some_values(cls, value: list[str] | None) -> list[str] | None:
        return _not_empty(value)

    @field_validator("countries")
    @classmethod
    def _countries(cls, value: list[str] | None) -> list[str] | None:
        value = _not_empty(value)
        if value is None:
            return None
        upper = [code.upper() for code in value]
        bad = [code for code in upper if not _COUNTRY.match(code)]
        if bad:
            raise ValueError(f"not ISO 3166-1 alpha-2 codes: {', '.join(bad)}")
        return upper

    def is_empty(self) -> bool:
        return self == Conditions()


class _RuleHead(_Model):
    """A rule's name, effect and target; `RuleSettings` adds the conditions (listed after these in the docs)."""

    id: str = Field(description="Unique id, named in every decision it makes (letters, digits, `_`, `-`).")
    effect: Literal["permit", "forbid"] = Field(
        description="`permit` allows, `forbid` refuses; a matching forbid beats every permit."
    )
    description: str = Field("", description="What the rule is for (shown by `portico policy explain`).")
    servers: list[str] = Field(default_factory=lambda: ["*"], description="Server-id globs the rule covers.")
    tools: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Name globs, matched against the upstream's own tool or prompt name (or resource URI).",
    )
    kinds: list[PolicyKind] = Field(
        default_factory=lambda: list(POLICY_KINDS), description="What the rule covers: tools, prompts, resources."
    )
    annotations: dict[str, bool | str] = Field(
        default_factory=dict,
        description="Tool annotations the tool must have, e.g. `{destructiveHint: true}`; a hint the tool "
        "leaves out takes its MCP default (destructiveHint and openWorldHint true, the others false). "
        "Honoured on forbid rules; a permit rule needs `trust_annotations: true`.",
    )
    trust_annotations: bool = Field(
        False,
        description="Let a permit rule rely on `annotations`. They are the upstream's own claims, not verified: "
        "set this only for upstreams you trust.",
    )

    @field_validator("servers", "tools")
    @classmethod
    def _some_targets(cls, value: list[str]) -> list[str]:
        _not_empty(value)
        return value

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not RULE_ID.match(value):
            raise ValueError("must be 1-64 of letters, digits, '_' or '-', starting with a letter or digit")
        return value

    @field_validator("kinds")
    @classmethod
    def _some_kinds(cls, value: list[PolicyKind]) -> list[PolicyKind]:
        if not value:
            raise ValueError("must list at least one of tools, prompts, resources (omit the key for all)")
        return value


class RuleSettings(Conditions, _RuleHead):
    """One rule: what it covers (servers, names, kinds, annotations) and when it holds (the conditions)."""

    unless: Conditions | None = Field(
        None, description="Forbid rules only: the rule does not apply when all of these hold (e.g. MFA)."
    )

    @model_validator(mode="after")
    def _coherent(self) -> RuleSettings:
        if self.annotations and "tools" not in self.kinds:
            raise ValueError("annotations: only tools carry annotations; add `tools` to `kinds`")
        if self.annotations and self.effect == "permit" and not self.trust_annotations:
            raise ValueError(
                "annotations: a permit rule may not rely on upstream annotations (they are unverified); "
                "set `trust_annotations: true` if this upstream is trusted, or use a forbid rule"
            )
        if self.unless is not None and self.effect != "forbid":
            raise ValueError("unless: only forbid rules take `unless` (on a permit, write the conditions directly)")
        if self.unless is not None and self.unless.is_empty():
            raise ValueError("unless: must name at least one condition")
        return self


class PolicySettings(_Model):
    """Who may see and use which server, tool, prompt and resource."""

    default: Literal["deny", "permit"] = Field(
        "deny",
        description="What happens when no rule permits: `deny` (implicit deny). `permit` opens every tool that "
        "no rule forbids; meant only for local development.",
    )
    networks: dict[str, list[str]] = Field(
        default_factory=dict, description="Named networks: name → list of CIDRs (or single addresses)."
    )
    rules: list[RuleSettings] = Field(default_factory=list, description="The rules; their order does not matter.")

    @field_validator("networks")
    @classmethod
    def _cidrs(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, cidrs in value.items():
            if not _NETWORK_NAME.match(name):
                raise ValueError(f"{name!r}: a network name is 1-64 of letters, digits, '.', '_' or '-'")
            if not cidrs:
                raise ValueError(f"{name}: must list at least one CIDR")
            for cidr in cidrs:
                try:
                    ipaddress.ip_network(cidr, strict=True)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _references(self) -> PolicySettings:
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.id in seen:
                raise ValueError(f"rules[{index}].id: duplicate rule id {rule.id!r}")
            seen.add(rule.id)
            for where, conditions in (("", rule), ("unless.", rule.unless)):
                unknown = [n for n in (conditions.networks or []) if n not in self.networks] if conditions else []
                if unknown:
                    raise ValueError(f"rules[{index}].{where}networks: unknown network {unknown[0]!r}")
        return self

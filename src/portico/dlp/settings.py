"""The `dlp:` section of `portico.yaml`: admin-defined detectors and the rules that say which sensitive values
may go where, as the operator writes them.

Validated here, compiled once by `portico.dlp.rules.compile_rules`. Every error names its key
(``dlp.rules[2].detectors: unknown detector 'ccard' (did you mean 'card'?)``). The policy of issue 4:

    dlp:
      rules:
        - id: cards-stay-in-finance          # no payment cards or SSNs to any server outside finance
          action: block
          direction: request
          detectors: [card, ssn]
          unless: {tags: [finance]}
        - id: no-secrets-to-third-parties    # secrets never to third-party servers
          action: block
          direction: request
          detectors: [secrets]
          tags: [third-party]
        - id: contractors-see-no-email       # redact e-mail addresses in results for the contractors group
          action: redact
          direction: response
          detectors: [email]
          groups: [contractors]

A rule applies to a call when every selector it names holds (servers, tags, tools, groups: any one value of a
list is enough) and its `unless` block, if any, does not (all of `unless`'s selectors hold). Rule order breaks
ties only: a value two rules catch gets the stronger action (block > redact > log).
"""

from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from portico.dlp import Detector, default_detectors, keyword_detector, regex_detector
from portico.errors import ConfigError

Action = Literal["block", "redact", "log"]
DirectionSetting = Literal["request", "response", "both"]
RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # no dots: the audit names a DLP rule `dlp.<id>`
DETECTOR_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")
TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")  # the shape of `servers[].tags`

# Families and aliases, by built-in detector name. `all` (every built-in and every declared detector) is added
# in `expand`. A test checks that these name only built-ins and that every built-in is in some family.
SECRETS = (
    "private_key",
    "jwt",
    "aws_access_key_id",
    "aws_secret_access_key",
    "gcp_api_key",
    "azure_storage_key",
    "github_token",
    "gitlab_token",
    "slack_token",
    "stripe_key",
    "anthropic_key",
    "openai_key",
)
NATIONAL_IDS = ("us_ssn", "fr_nir", "de_idnr", "nl_bsn")
FAMILIES: dict[str, tuple[str, ...]] = {
    "secrets": SECRETS,
    "credentials": SECRETS,
    "financial": ("card", "iban"),
    "national_id": NATIONAL_IDS,
    "contact": ("email", "phone"),
    "pii": (*NATIONAL_IDS, "email", "phone"),
    "network": ("ipv4", "ipv6"),
    "ssn": ("us_ssn",),
}
ALL = "all"


@functools.cache
def builtin_names() -> tuple[str, ...]:
    """The built-in detectors' names, in the engine's order (credentials first: they win overlapping spans)."""
    return tuple(d.name for d in default_detectors())


def expand(names: list[str], declared: tuple[str, ...]) -> tuple[str, ...]:
    """Detector names for a rule's `detectors` list: families and aliases opened, duplicates dropped, in order.

    Raises:
        KeyError: a name is neither a built-in, a family, `all`, nor in `declared`.
    """
    out: dict[str, None] = {}
    for name in names:
        if name == ALL:
            members: tuple[str, ...] = (*builtin_names(), *declared)
        elif name in FAMILIES:
            members = FAMILIES[name]
        elif name in builtin_names() or name in declared:
            members = (name,)
        else:
            raise KeyError(name)
        out.update(dict.fromkeys(members))
    return tuple(out)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _not_empty(values: list[str] | None) -> list[str] | None:
    """An empty list would match nothing, silently; omitting the key is how a rule says "any"."""
    if values is not None and (not values or any(not v for v in values)):
        raise ValueError("must list at least one non-empty value (omit the key to match any)")
    return values


class DetectorSettings(_Model):
    """An admin-defined detector: a named regex or a named keyword list (give exactly one)."""

    name: str = Field(
        description="How rules refer to it: lowercase letters, digits, `_` and `-`; not a built-in or family name."
    )
    regex: str | None = Field(
        None,
        description="A regular expression in RE2 syntax (no backreferences or lookaround: it runs in time linear in "
        "the text); the whole match is the finding.",
    )
    keywords: list[str] | None = Field(None, description="Words or phrases, matched as whole words.")
    ignore_case: bool | None = Field(
        None, description="Match regardless of case (default: `false` for `regex`, `true` for `keywords`)."
    )
    description: str = Field("", description="What it finds and why.")

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not DETECTOR_NAME.match(value):
            raise ValueError("must be 1-48 of lowercase letters, digits, '_' or '-', starting with a letter")
        if value in builtin_names() or value in FAMILIES or value == ALL:
            raise ValueError(f"{value!r} is a built-in detector or family name; choose another")
        return value

    @model_validator(mode="after")
    def _buildable(self) -> DetectorSettings:
        if (self.regex is None) == (self.keywords is None):
            raise ValueError("give exactly one of `regex` or `keywords`")
        try:
            self.build()
        except ConfigError as exc:  # the admin's own pattern may be shown back to the admin
            problem = exc.public.split(": ", 1)[-1]
            raise ValueError(f"{problem} ({exc.detail})" if exc.detail else problem) from exc
        return self

    def build(self) -> Detector:
        """The detector.

        Raises:
            ConfigError: the regex does not compile or matches the empty string; the keyword list is blank.
        """
        if self.regex is not None:
            return regex_detector(self.name, self.regex, ignore_case=bool(self.ignore_case))
        assert self.keywords is not None
        return keyword_detector(self.name, self.keywords, ignore_case=self.ignore_case is not False)


class Selector(_Model):
    """Which calls a rule covers; an omitted key matches any call. All named keys must hold."""

    servers: list[str] | None = Field(None, description="Server-id globs; the call's server must match one.")
    tags: list[str] | None = Field(
        None, description="Server tags (`servers[].tags`); the call's server must carry at least one."
    )
    tools: list[str] | None = Field(
        None,
        description="Name globs, matched against the upstream's own tool or prompt name (or resource URI).",
    )
    groups: list[str] | None = Field(None, description="Group names; the caller must be in at least one.")

    @field_validator("servers", "tools", "groups")
    @classmethod
    def _some_values(cls, value: list[str] | None) -> list[str] | None:
        return _not_empty(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        for tag in _not_empty(value) or ():
            if not TAG.match(tag):
                raise ValueError(f"tag {tag!r}: must be lowercase letters, digits and '-', ≤ 48 chars")
        return value

    def is_empty(self) -> bool:
        return self.servers is None and self.tags is None and self.tools is None and self.groups is None


class _RuleHead(_Model):
    """A rule's name, what it does and what it looks for; `RuleSettings` adds where (listed after in the docs)."""

    id: str = Field(description="Unique id, named in every refusal and audit record (letters, digits, `_`, `-`).")
    description: str = Field("", description="What the rule is for.")
    action: Action = Field(
        description="`block`: refuse the call (request) or withhold the result (response); `redact`: mask the "
        "values and pass the rest on; `log`: pass it unchanged. Every finding is audited, whatever the action."
    )
    direction: DirectionSetting = Field(
        "both",
        description="`request`: what goes to the upstream (tool and prompt arguments, completion arguments, "
        "resource URIs); `response`: what comes back (tool results incl. structuredContent, resource contents, "
        "prompt messages, completions); `both`.",
    )
    detectors: list[str] = Field(
        description="Detector names (`card`, `us_ssn`, `email`, …, or declared in `dlp.detectors`), families "
        "(`secrets`/`credentials`, `financial`, `national_id`, `pii`, `contact`, `network`), the alias `ssn`, or "
        "`all`."
    )

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not RULE_ID.match(value):
            raise ValueError("must be 1-64 of letters, digits, '_' or '-', starting with a letter or digit")
        return value

    @field_validator("detectors")
    @classmethod
    def _some_detectors(cls, value: list[str]) -> list[str]:
        if not value or any(not v for v in value):
            raise ValueError("must name at least one detector or family")
        return value


class RuleSettings(Selector, _RuleHead):
    """One rule: what it looks for, what it does, and which calls it covers."""

    unless: Selector | None = Field(
        None,
        description='The rule does not apply when all of these hold, e.g. `{tags: [finance]}` for "any server '
        'outside finance" or `{groups: [auditors]}`.',
    )

    @model_validator(mode="after")
    def _coherent(self) -> RuleSettings:
        if self.unless is not None and self.unless.is_empty():
            raise ValueError("unless: must name at least one of servers, tags, tools, groups")
        return self

    @property
    def directions(self) -> tuple[Literal["request", "response"], ...]:
        return ("request", "response") if self.direction == "both" else (self.direction,)


class DlpSettings(_Model):
    """Data loss prevention on calls: which detectors run on which payloads, and what happens to a finding."""

    enabled: bool = Field(True, description="`false` turns every rule off (nothing is scanned).")
    fingerprint_key_file: Path = Field(
        Path(".portico/dlp/fingerprint.key"),
        description="HMAC key of the fingerprints audit records hold instead of matched values (created on first "
        "use, mode 0600). Replicas must share it, or the same value gets different fingerprints.",
    )
    detectors: list[DetectorSettings] = Field(
        default_factory=list, description="Admin-defined detectors (a regex or a keyword list each) rules may name."
    )
    rules: list[RuleSettings] = Field(
        default_factory=list, description="Which detectors run on which calls, and the action on a finding."
    )

    @model_validator(mode="after")
    def _names_resolve(self) -> DlpSettings:
        declared = tuple(d.name for d in self.detectors)
        errors: list[InitErrorDetails] = []
        seen: set[str] = set()
        for index, name in enumerate(declared):
            if name in seen:
                errors.append(_error(("detectors", index, "name"), f"duplicate detector name {name!r}", name))
            seen.add(name)
        ids: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.id in ids:
                errors.append(_error(("rules", index, "id"), f"duplicate rule id {rule.id!r}", rule.id))
            ids.add(rule.id)
            for name in rule.detectors:
                try:
                    expand([name], declared)
                except KeyError:
                    errors.append(_error(("rules", index, "detectors"), _unknown(name, declared), name))
        if errors:
            # Raised with its own locations, so the loader names the exact key and line (`dlp.rules[2].detectors`).
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.rules)


def _error(loc: tuple[str | int, ...], message: str, value: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("dlp", message), loc=loc, input=value)


def _unknown(name: str, declared: tuple[str, ...]) -> str:
    known = [*builtin_names(), *FAMILIES, ALL, *declared]
    close = difflib.get_close_matches(name, known, n=1)
    return f"unknown detector {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")

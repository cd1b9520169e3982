"""Compiled matchers: name globs, and the conditions a rule puts on the caller.

Everything here is built once, when a policy is compiled, and then only read: globs are one precompiled regular
expression (plus a set for the literal patterns), networks are `ipaddress` objects, time zones `ZoneInfo`s.
A condition answers `holds(facts)` and names what it wants (`want`, e.g. "MFA", "group eng or sre") so that
decisions and `explain` can say why.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Literal, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from portico.policy.settings import DAYS, Conditions, Day, TimeWindow

DeviceState = Literal["enrolled", "revoked", "unknown", "none"]
IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class Glob:
    """Case-sensitive shell-style patterns (`*`, `?`, `[…]`); matches when any pattern matches all of the text."""

    patterns: tuple[str, ...]
    any: bool
    exact: frozenset[str]
    regex: re.Pattern[str] | None

    @classmethod
    def of(cls, patterns: Iterable[str]) -> Glob:
        patterns = tuple(patterns)
        wild = [p for p in patterns if any(ch in p for ch in "*?[")]
        regex = re.compile("|".join(fnmatch.translate(p) for p in wild)) if wild else None
        exact = frozenset(p for p in patterns if p not in wild)
        return cls(patterns, "*" in patterns, exact, regex)

    def match(self, text: str) -> bool:
        return self.any or text in self.exact or (self.regex is not None and self.regex.match(text) is not None)

    def __str__(self) -> str:
        return " or ".join(self.patterns)


class Facts(NamedTuple):
    """What the conditions read about one caller at one moment (the caller's IP parsed once).

    A named tuple rather than a frozen dataclass: it is built on every uncached decision, and costs a third.
    """

    subject: str
    groups: frozenset[str]
    mfa: bool
    device: DeviceState
    ip: IPAddress | None
    country: str | None
    client_id: str | None
    now: datetime  # timezone-aware


class Condition(Protocol):
    """One requirement on the caller."""

    @property
    def want(self) -> str: ...

    def holds(self, facts: Facts) -> bool: ...


@dataclass(frozen=True, slots=True)
class UsersCondition:
    users: Glob

    @property
    def want(self) -> str:
        return f"user {self.users}"

    def holds(self, facts: Facts) -> bool:
        return self.users.match(facts.subject)


@dataclass(frozen=True, slots=True)
class GroupsCondition:
    groups: frozenset[str]
    shown: str

    @property
    def want(self) -> str:
        return f"group {self.shown}"

    def holds(self, facts: Facts) -> bool:
        return not self.groups.isdisjoint(facts.groups)


@dataclass(frozen=True, slots=True)
class MfaCondition:
    @property
    def want(self) -> str:
        return "MFA"

    def holds(self, facts: Facts) -> bool:
        return facts.mfa


@dataclass(frozen=True, slots=True)
class DeviceCondition:
    @property
    def want(self) -> str:
        return "an enrolled device"

    def holds(self, facts: Facts) -> bool:
        return facts.device == "enrolled"


@dataclass(frozen=True, slots=True)
class NetworksCondition:
    names: tuple[str, ...]
    networks: tuple[IPv4Network | IPv6Network, ...]

    @property
    def want(self) -> str:
        return f"network {' or '.join(self.names)}"

    def holds(self, facts: Facts) -> bool:
        ip = facts.ip
        return ip is not None and any(ip in network for network in self.networks)


@dataclass(frozen=True, slots=True)
class CountriesCondition:
    countries: frozenset[str]
    shown: str

    @property
    def want(self) -> str:
        return f"country {self.shown}"

    def holds(self, facts: Facts) -> bool:
        return facts.country in self.countries


@dataclass(frozen=True, slots=True)
class TimeCondition:
    """A weekly window in a zone; `end` before `start` means the window runs past midnight into the next day."""

    weekdays: frozenset[int]  # 0 = Monday, as datetime.weekday()
    start: int  # minutes after local midnight
    end: int
    zone: ZoneInfo
    shown: str

    @property
    def want(self) -> str:
        return f"time {self.shown}"

    def holds(self, facts: Facts) -> bool:
        local = facts.now.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self.start < self.end:
            return day in self.weekdays and self.start <= minute < self.end
        return (day in self.weekdays and minute >= self.start) or ((day - 1) % 7 in self.weekdays and minute < self.end)


@dataclass(frozen=True, slots=True)
class ClientsCondition:
    clients: Glob

    @property
    def want(self) -> str:
        return f"client {self.clients}"

    def holds(self, facts: Facts) -> bool:
        return facts.client_id is not None and self.clients.match(facts.client_id)


def build_conditions(settings: Conditions, networks: dict[str, list[str]]) -> tuple[Condition, ...]:
    """The compiled form of a `Conditions` block, in the order the settings list them (as reasons show them)."""
    built: list[Condition] = []
    if settings.users is not None:
        built.append(UsersCondition(Glob.of(settings.users)))
    if settings.groups is not None:
        built.append(GroupsCondition(frozenset(settings.groups), " or ".join(settings.groups)))
    if settings.mfa:
        built.append(MfaCondition())
    if settings.device == "enrolled":
        built.append(DeviceCondition())
    if settings.networks is not None:
        cidrs = tuple(ip_network(cidr) for name in settings.networks for cidr in networks[name])
        built.append(NetworksCondition(tuple(settings.networks), cidrs))
    if settings.countries is not None:
        built.append(CountriesCondition(frozenset(settings.countries), " or ".join(settings.countries)))
    if settings.time is not None:
        built.append(_time_condition(settings.time))
    if settings.clients is not None:
        built.append(ClientsCondition(Glob.of(settings.clients)))
    return tuple(built)


def _time_condition(window: TimeWindow) -> TimeCondition:
    shown = f"{_days(window.days)} {window.start}-{window.end} {window.tz}"
    weekdays = frozenset(DAYS.index(day) for day in window.days)
    return TimeCondition(weekdays, _minutes(window.start), _minutes(window.end), ZoneInfo(window.tz), shown)


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _days(days: Sequence[Day]) -> str:
    """`mon-fri`, `sat,sun`, `every day`: a run of three or more consecutive days is written as a range."""
    indexes = sorted({DAYS.index(day) for day in days})
    if len(indexes) == 7:
        return "every day"
    runs: list[list[int]] = []
    for index in indexes:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    parts = [f"{DAYS[r[0]]}-{DAYS[r[-1]]}" if len(r) >= 3 else ",".join(DAYS[i] for i in r) for r in runs]
    return ",".join(parts)

"""IP address → ISO 3166-1 alpha-2 country: the operator's configured ranges, then an optional offline table.

Configured ranges (`network.countries`) are a longest-prefix match: one dict per prefix length present, probed
from the longest down (at most 33 probes for IPv4, 129 for IPv6; a handful in practice). The optional table
file (`network.country_file`) is sorted ranges searched with `bisect`.

No IP-to-country database ships with Portico: none on PyPI bundles its data in the wheel, under terms that
fit an Apache-2.0 distribution, and kept current (when this was written, the candidates
either called a web service, downloaded MaxMind data at run time, or bundled GeoLite2 data two years old
under MaxMind's own terms). Operators who want one point `country_file` at a CSV they download
themselves (DB-IP's CC-BY-4.0 "IP to Country Lite" works as it is).
"""

from __future__ import annotations

import bisect
import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from pathlib import Path

from portico.errors import ConfigError
from portico.identity.context.forwarded import IPAddress


@dataclass(frozen=True, slots=True)
class _Ranges:
    """Non-overlapping `[first, last]` integer ranges of one address family, sorted by `first`."""

    firsts: list[int] = field(default_factory=list)
    lasts: list[int] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)

    def find(self, value: int) -> str | None:
        index = bisect.bisect_right(self.firsts, value) - 1
        if index >= 0 and value <= self.lasts[index]:
            return self.codes[index]
        return None


class CountryTable:
    """Answers `country(address)`; build with `CountryTable.build(countries, country_file)`."""

    def __init__(self, prefixes: dict[int, dict[int, dict[int, str]]], files: dict[int, _Ranges]) -> None:
        self._prefixes = prefixes  # version → prefix length → network address (int) → code
        self._lengths = {version: sorted(by_length, reverse=True) for version, by_length in prefixes.items()}
        self._files = files  # version → ranges

    @classmethod
    def build(cls, countries: Mapping[str, Iterable[str]], country_file: Path | None = None) -> CountryTable:
        """Compile configured ranges (already validated CIDRs) and read `country_file` if given.

        Raises:
            ConfigError: the file cannot be read, or a line of it is not `first,last,CC`.
        """
        prefixes: dict[int, dict[int, dict[int, str]]] = {4: {}, 6: {}}
        for code, cidrs in countries.items():
            for cidr in cidrs:
                network = ip_network(cidr)
                prefixes[network.version].setdefault(network.prefixlen, {})[int(network.network_address)] = code
        files = _read_file(country_file) if country_file is not None else {}
        return cls(prefixes, files)

    def country(self, address: IPAddress | None) -> str | None:
        """The country of `address`, or None when nothing covers it."""
        if address is None:
            return None
        version, value = address.version, int(address)
        bits = 32 if version == 4 else 128
        by_length = self._prefixes.get(version, {})
        for length in self._lengths.get(version, ()):
            network = value & (((1 << length) - 1) << (bits - length)) if length else 0
            code = by_length[length].get(network)
            if code is not None:
                return code
        ranges = self._files.get(version)
        return ranges.find(value) if ranges is not None else None


def _read_file(path: Path) -> dict[int, _Ranges]:
    rows: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if not row or row[0].startswith("#"):
                    continue
                try:
                    version, first, last = _bounds(row[0], row[1])
                    code = row[2].strip().upper()
                except (ValueError, IndexError) as exc:
                    raise ConfigError(f"network.country_file: line {number} is not `first,last,CC`") from exc
                if len(code) == 2 and code.isalpha() and first <= last:
                    rows[version].append((first, last, code))
    except OSError as exc:
        raise ConfigError("network.country_file cannot be read", detail=str(exc)) from exc
    tables: dict[int, _Ranges] = {}
    for version, found in rows.items():
        found.sort()
        tables[version] = _Ranges([r[0] for r in found], [r[1] for r in found], [r[2] for r in found])
    return tables


def _bounds(first: str, last: str) -> tuple[int, int, int]:
    first, last = first.strip(), last.strip()
    if first.isdigit() and last.isdigit():  # IP2Location: integers (IPv4 in the v4 file, else IPv6)
        low, high = int(first), int(last)
        return (4 if high < 1 << 32 else 6), low, high
    a, b = ip_address(first), ip_address(last)
    if a.version != b.version:
        raise ValueError("mixed address families")
    return a.version, int(a), int(b)

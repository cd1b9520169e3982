"""IP addresses.

* `ipv4` — dotted quad, each octet 0-255 without leading zeros; not part of a longer dotted number
  (`1.2.3.4.5`) and not a version (`v1.2.3.4`, `version 10.0.0.1`).
* `ipv6` — validated by `ipaddress.IPv6Address`, so times (`12:30:45`) and MAC addresses fail; at least two
  non-empty groups, or the loopback `::1`, so that stray `::` in code is not an address.
"""

from __future__ import annotations

import ipaddress
import re

from portico.dlp.model import Finding

_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?![\w]|\.\d)", re.ASCII)
_VERSIONISH = re.compile(r"(?i)(?:\bv|version|ver\.?|release|build|rev\.?)\s*$", re.ASCII)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?![\w:.])", re.ASCII
)

# RE2 (see `Detector`): a dotted quad with `_IPV4`'s boundaries.
_IPV4_PREFILTER = r"(?:^|[^A-Za-z0-9_.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?:$|[^A-Za-z0-9_.]|\.(?:$|[^0-9]))"


def ipv4_ok(candidate: str) -> bool:
    """Four decimal octets 0-255 with no leading zeros."""
    parts = candidate.split(".")
    return len(parts) == 4 and all(p == "0" or (p[0] != "0" and int(p) <= 255) for p in parts)


class Ipv4Detector:
    name = "ipv4"
    hints: tuple[str, ...] = (".",)
    needs_digits = True
    prefilter = _IPV4_PREFILTER

    def find(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        for m in _IPV4.finditer(text):
            if ipv4_ok(m.group()) and not _VERSIONISH.search(text, max(0, m.start() - 12), m.start()):
                out.append(Finding(self.name, m.start(), m.end()))
        return out


# Times have two colons; an address without "::" has seven. Literal-first, so the regex engine skips fast.
_THREE_COLONS = re.compile(r":[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")


def ipv6_ok(candidate: str) -> bool:
    """A valid IPv6 address with at least two groups (or `::1`)."""
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return candidate == "::1" or sum(1 for g in candidate.split(":") if g) >= 2


class Ipv6Detector:
    name = "ipv6"
    hints: tuple[str, ...] = (":",)
    needs_digits = False
    prefilter = r"::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:"  # RE2: the test at the top of `find`

    def find(self, text: str) -> list[Finding]:
        if "::" not in text and _THREE_COLONS.search(text) is None:
            return []
        return [Finding(self.name, m.start(), m.end()) for m in _IPV6.finditer(text) if ipv6_ok(m.group())]

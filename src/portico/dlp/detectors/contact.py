"""Contact details: e-mail addresses and phone numbers (conservative).

* `email` — `local@domain.tld` with an alphabetic TLD of 2-24 letters, no empty or dotted-edge labels; image
  names such as `icon@2x.png` are not addresses.
* `phone` — E.164 (`+` country code, 8-15 digits in all, grouped by spaces, dots, dashes or one pair of
  parentheses) and North American numbers `(415) 555-2671` / `415-555-2671` / `415.555.2671` (area and exchange
  codes 2-9 first). Other national formats without `+` are too easily confused with order and invoice numbers.
"""

from __future__ import annotations

import re

from portico.dlp.model import Finding

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![\w-]|\.[A-Za-z0-9])",
    re.ASCII,
)
# RE2 (see `Detector`): a local part's last character, `@`, a label, a dot and two letters.
_EMAIL_PREFILTER = r"[A-Za-z0-9_%+-]@[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2}"
_FILE_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "avif", "bmp", "tif", "tiff"})

_E164 = re.compile(r"\+(?<![\w+]\+)[1-9](?:[ .-]?\(?\d\)?){7,14}(?![\w]|[.-]\d)", re.ASCII)
_NANP = re.compile(
    r"(?:\((?<![\w(]\()[2-9]\d\d\) ?|[2-9](?<![\w.+-][2-9])\d\d([-.]))[2-9]\d\d(?(1)\1|[-.])\d{4}(?![\w]|[.-]\d)",
    re.ASCII,
)


class EmailDetector:
    """E-mail addresses (see module docstring)."""

    name = "email"
    hints: tuple[str, ...] = ("@",)
    needs_digits = False
    prefilter = _EMAIL_PREFILTER

    def find(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        for m in _EMAIL.finditer(text):
            local = m.group()[: m.group().index("@")]
            if ".." in m.group() or m.group(1).lower() in _FILE_TLDS or local.endswith("."):
                continue
            out.append(Finding(self.name, m.start(), m.end()))
        return out


# RE2 (see `Detector`): E.164 (8+ digits after `+`), or a North American number with `_NANP`'s boundaries.
_PHONE_PREFILTER = (
    r"\+[1-9](?:[ .-]?\(?[0-9]\)?){7}"
    r"|\([2-9][0-9][0-9]\) ?[2-9][0-9][0-9][-.][0-9]{4}"
    r"|(?:^|[^A-Za-z0-9_.+-])[2-9][0-9][0-9][-.][2-9][0-9][0-9][-.][0-9]{4}"
)


def _e164_ok(candidate: str) -> bool:
    digits = sum(c.isdigit() for c in candidate)
    if not 8 <= digits <= 15 or candidate.count("(") != candidate.count(")") or candidate.count("(") > 1:
        return False
    return re.search(r"[ .-]{2}", candidate) is None


class PhoneDetector:
    """Phone numbers (see module docstring)."""

    name = "phone"
    hints: tuple[str, ...] = ()
    needs_digits = True
    prefilter = _PHONE_PREFILTER

    def find(self, text: str) -> list[Finding]:
        spans = [(m.start(), m.end()) for m in _E164.finditer(text) if _e164_ok(m.group())] if "+" in text else []
        spans += [(m.start(), m.end()) for m in _NANP.finditer(text)]
        return [Finding(self.name, s, e) for s, e in sorted(set(spans))]

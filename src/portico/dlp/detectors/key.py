"""Private keys and signed tokens.

* `private_key` — a PEM block `-----BEGIN … PRIVATE KEY-----` (RSA, EC, DSA, OPENSSH, ENCRYPTED, PKCS#8) up to
  its matching END line; a block cut off without END is taken from BEGIN to the end of its base64 body. Bodies
  with literal `\\n` escapes (a service-account JSON inside a string) count too.
* `jwt` — three base64url segments `header.payload.signature` whose header decodes to a JSON object with a
  string `alg`. The signature may be empty (`alg: none`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from portico.dlp.model import Finding

_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )?PRIVATE KEY)-----"
    r"(?:(?:[A-Za-z0-9+/=:,\- \t\r\n]|\\[rn])*?-----END \1-----|(?:[A-Za-z0-9+/=:,\- \t\r\n]|\\[rn])*)"
)
_JWT = re.compile(
    r"(?<![A-Za-z0-9_.-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*(?![A-Za-z0-9_.-])", re.ASCII
)


class PrivateKeyDetector:
    name = "private_key"
    hints: tuple[str, ...] = ("PRIVATE KEY-----",)
    needs_digits = False

    def find(self, text: str) -> list[Finding]:
        return [Finding(self.name, m.start(), m.end()) for m in _PEM.finditer(text)]


def b64url_decode(segment: str) -> bytes | None:
    """Decode unpadded base64url, or None if it is not."""
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


def jwt_ok(token: str) -> bool:
    """Whether the first segment is a JSON object header with a string `alg`."""
    raw = b64url_decode(token.split(".", 1)[0])
    if raw is None:
        return False
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(header, dict) and isinstance(header.get("alg"), str)


class JwtDetector:
    name = "jwt"
    hints: tuple[str, ...] = ("eyJ",)
    needs_digits = False
    prefilter = r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\."  # RE2: `_JWT` without its boundaries

    def find(self, text: str) -> list[Finding]:
        return [Finding(self.name, m.start(), m.end()) for m in _JWT.finditer(text) if jwt_ok(m.group())]

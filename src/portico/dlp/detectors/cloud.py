"""Cloud provider credentials.

* `aws_access_key_id` — `AKIA`/`ASIA` (long-term / temporary) plus 16 characters of the base32 alphabet A-Z2-7.
* `aws_secret_access_key` — 40 characters of base64 alphabet, only in context: after a name such as
  `aws_secret_access_key` / `SecretAccessKey` in text, or as the value of a field so named. Must mix cases and
  digits (a 40-hex git SHA or a word run is not a key).
* `gcp_api_key` — `AIza` plus 35 characters of `[A-Za-z0-9_-]`. Service-account private keys are PEM blocks,
  found by `private_key`.
* `azure_storage_key` — the `AccountKey=` (88 base64 characters ending `==`) of a storage connection string,
  the `SharedAccessKey=` (44 characters ending `=`) of a Service Bus / Event Hubs one, or an 88-character key as
  the value of a field named like `account_key` / `storage_key`.
"""

from __future__ import annotations

import re

from portico.dlp.detectors.pattern import PatternDetector
from portico.dlp.model import Finding

_SECRET_NAME = r"aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key|aws_?secret"
_AWS_SECRET_IN_TEXT = re.compile(
    rf"(?:{_SECRET_NAME})[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{{40}})(?![A-Za-z0-9/+=])", re.IGNORECASE | re.ASCII
)
_AWS_SECRET_FIELD = re.compile(rf"(?:{_SECRET_NAME})$", re.IGNORECASE)
_AWS_SECRET_VALUE = re.compile(r"[A-Za-z0-9/+]{40}", re.ASCII)
_AZURE_FIELD = re.compile(r"(?:account|storage|primary|secondary)_?key$", re.IGNORECASE)
_AZURE_VALUE = re.compile(r"[A-Za-z0-9/+]{86}==", re.ASCII)


def mixed_key(value: str) -> bool:
    """A random key mixes upper case, lower case and digits (rules out hex digests and words)."""
    return any(c.isupper() for c in value) and any(c.islower() for c in value) and any(c.isdigit() for c in value)


class AwsSecretKeyDetector:
    name = "aws_secret_access_key"
    hints: tuple[str, ...] = ("ecret", "ECRET")
    needs_digits = False

    def find(self, text: str) -> list[Finding]:
        return [
            Finding(self.name, m.start(1), m.end(1))
            for m in _AWS_SECRET_IN_TEXT.finditer(text)
            if mixed_key(m.group(1))
        ]

    def find_in_field(self, key: str, text: str) -> list[Finding]:
        value = text.strip()
        if _AWS_SECRET_FIELD.search(key) and _AWS_SECRET_VALUE.fullmatch(value) and mixed_key(value):
            start = text.index(value)
            return [Finding(self.name, start, start + len(value))]
        return []


class AzureStorageKeyDetector(PatternDetector):
    def __init__(self) -> None:
        super().__init__(
            "azure_storage_key",
            re.compile(r"(?:AccountKey=([A-Za-z0-9/+]{86}==)|SharedAccessKey=([A-Za-z0-9/+]{43}=))(?![A-Za-z0-9/+=])"),
            hints=("AccountKey=", "SharedAccessKey="),
        )

    def find(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        for m in self.pattern.finditer(text):
            g = 1 if m.group(1) else 2
            if mixed_key(m.group(g)):
                out.append(Finding(self.name, m.start(g), m.end(g)))
        return out

    def find_in_field(self, key: str, text: str) -> list[Finding]:
        value = text.strip()
        if _AZURE_FIELD.search(key) and _AZURE_VALUE.fullmatch(value) and mixed_key(value):
            start = text.index(value)
            return [Finding(self.name, start, start + len(value))]
        return []


def aws_access_key_id() -> PatternDetector:
    return PatternDetector(
        "aws_access_key_id",
        re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z2-7]{16}(?![A-Za-z0-9])"),
        hints=("AKIA", "ASIA"),
    )


def gcp_api_key() -> PatternDetector:
    return PatternDetector(
        "gcp_api_key", re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])"), hints=("AIza",)
    )

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
from functools import lru_cache

from portico.dlp.detectors.pattern import PatternDetector
from portico.dlp.model import Finding

_SECRET_NAME = r"aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key|aws_?secret"
_AWS_SECRET_IN_TEXT = re.compile(
    rf"(?:{_SECRET_NAME})[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{{40}})(?![A-Za-z0-9/+=])", re.IGNORECASE | re.ASCII
)
# RE2 (see `Detector`): `_AWS_SECRET_IN_TEXT`'s start (`\s` spelled out: RE2's lacks `\v`). Here and below, gates
# count only a few characters after a literal, so that the scanner's DFA need not count far after each occurrence.
_AWS_SECRET_PREFILTER = rf"(?i:{_SECRET_NAME})[\"']?[\t\n\v\f\r ]*[:=][\t\n\v\f\r ]*[\"']?[A-Za-z0-9/+]{{8}}"
_AWS_SECRET_FIELD = re.compile(rf"(?:{_SECRET_NAME})$", re.IGNORECASE)
_AWS_SECRET_VALUE = re.compile(r"[A-Za-z0-9/+]{40}", re.ASCII)
_AZURE_FIELD = re.compile(r"(?:account|storage|primary|secondary)_?key$", re.IGNORECASE)
_AZURE_VALUE = re.compile(r"[A-Za-z0-9/+]{86}==", re.ASCII)


# Field names recur in every call of a tool; what they say is remembered (bounded: names can be hostile).
@lru_cache(maxsize=4096)
def _names_aws_secret(key: str) -> bool:
    return _AWS_SECRET_FIELD.search(key) is not None


@lru_cache(maxsize=4096)
def _names_azure_key(key: str) -> bool:
    return _AZURE_FIELD.search(key) is not None


def mixed_key(value: str) -> bool:
    """A random key mixes upper case, lower case and digits (rules out hex digests and words)."""
    return any(c.isupper() for c in value) and any(c.islower() for c in value) and any(c.isdigit() for c in value)


class AwsSecretKeyDetector:
    name = "aws_secret_access_key"
    hints: tuple[str, ...] = ("ecret", "ECRET")
    needs_digits = False
    prefilter = _AWS_SECRET_PREFILTER

    def find(self, text: str) -> list[Finding]:
        return [
            Finding(self.name, m.start(1), m.end(1))
            for m in _AWS_SECRET_IN_TEXT.finditer(text)
            if mixed_key(m.group(1))
        ]

    def accepts_field(self, key: str) -> bool:
        return _names_aws_secret(key)

    def find_in_field(self, key: str, text: str) -> list[Finding]:
        value = text.strip()
        if _names_aws_secret(key) and _AWS_SECRET_VALUE.fullmatch(value) and mixed_key(value):
            start = text.index(value)
            return [Finding(self.name, start, start + len(value))]
        return []


class AzureStorageKeyDetector(PatternDetector):
    def __init__(self) -> None:
        super().__init__(
            "azure_storage_key",
            re.compile(r"(?:AccountKey=([A-Za-z0-9/+]{86}==)|SharedAccessKey=([A-Za-z0-9/+]{43}=))(?![A-Za-z0-9/+=])"),
            hints=("AccountKey=", "SharedAccessKey="),
            prefilter=r"(?:AccountKey|SharedAccessKey)=[A-Za-z0-9/+]{8}",
        )

    def find(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        for m in self.pattern.finditer(text):
            g = 1 if m.group(1) else 2
            if mixed_key(m.group(g)):
                out.append(Finding(self.name, m.start(g), m.end(g)))
        return out

    def accepts_field(self, key: str) -> bool:
        return _names_azure_key(key)

    def find_in_field(self, key: str, text: str) -> list[Finding]:
        value = text.strip()
        if _names_azure_key(key) and _AZURE_VALUE.fullmatch(value) and mixed_key(value):
            start = text.index(value)
            return [Finding(self.name, start, start + len(value))]
        return []


def aws_access_key_id() -> PatternDetector:
    return PatternDetector(
        "aws_access_key_id",
        re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z2-7]{16}(?![A-Za-z0-9])"),
        hints=("AKIA", "ASIA"),
        prefilter=r"(?:AKIA|ASIA)[A-Z2-7]{8}",
    )


def gcp_api_key() -> PatternDetector:
    return PatternDetector(
        "gcp_api_key",
        re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])"),
        hints=("AIza",),
        prefilter=r"AIza[0-9A-Za-z_-]{8}",
    )

"""Vendor API tokens recognised by their documented prefixes and shapes.

| name | shape |
| --- | --- |
| `github_token` | `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_` + 36 alphanumerics; `github_pat_` + 22 + `_` + 59 |
| `gitlab_token` | `glpat-` + at least 20 of `[A-Za-z0-9_.-]` |
| `slack_token` | `xoxa-`/`xoxb-`/`xoxp-`/`xoxr-` + digit groups + an alphanumeric tail |
| `stripe_key` | `sk_live_`/`rk_live_` + at least 24 alphanumerics |
| `anthropic_key` | `sk-ant-` + at least 32 of `[A-Za-z0-9_-]` |
| `openai_key` | `sk-proj-`/`sk-svcacct-`/`sk-admin-` + 40+ of `[A-Za-z0-9_-]`; legacy `sk-` + 48 alphanumerics |

Every token must stand alone (no token character directly before or after) and its random part must contain
both letters and digits, so identifiers such as `sk-learn-regression-models` are not tokens.
"""

from __future__ import annotations

import re

from portico.dlp.detectors.pattern import PatternDetector

_EDGE_BEFORE = r"(?<![A-Za-z0-9_-])"
_EDGE_AFTER = r"(?![A-Za-z0-9_-])"


def _random_part(value: str) -> bool:
    tail = value.rsplit("_", 1)[-1] if value.startswith(("gh", "github")) else value.split("-", 2)[-1]
    return any(c.isdigit() for c in tail) and any(c.isalpha() for c in tail)


def _token(name: str, body: str, hints: tuple[str, ...], prefilter: str) -> PatternDetector:
    """`prefilter` (RE2, see `Detector`): the prefix and the first few characters of the random part. Short, so
    that the scanner's DFA need not count far after each occurrence of a prefix (text can repeat them).
    """
    return PatternDetector(
        name, re.compile(_EDGE_BEFORE + body + _EDGE_AFTER), hints=hints, validate=_random_part, prefilter=prefilter
    )


def github_token() -> PatternDetector:
    return _token(
        "github_token",
        r"(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        r"(?:gh[pousr]|github_pat)_[A-Za-z0-9]{8}",
    )


def gitlab_token() -> PatternDetector:
    return _token("gitlab_token", r"glpat-[A-Za-z0-9_.-]{20,}", ("glpat-",), r"glpat-[A-Za-z0-9_.-]{8}")


def slack_token() -> PatternDetector:
    # `\d` here also takes non-ASCII digits, which RE2's does not: the prefilter is the prefix alone.
    return _token("slack_token", r"xox[abpr]-\d{6,14}(?:-\d{6,14}){0,2}-[A-Za-z0-9]{8,}", ("xox",), r"xox[abpr]-")


def stripe_key() -> PatternDetector:
    return _token("stripe_key", r"[sr]k_live_[A-Za-z0-9]{24,}", ("k_live_",), r"[sr]k_live_[A-Za-z0-9]{8}")


def anthropic_key() -> PatternDetector:
    return _token("anthropic_key", r"sk-ant-[A-Za-z0-9_-]{32,}", ("sk-ant-",), r"sk-ant-[A-Za-z0-9_-]{8}")


def openai_key() -> PatternDetector:
    return _token(
        "openai_key",
        r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}|(?!ant-)[A-Za-z0-9]{48})",
        ("sk-",),
        r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{8}|[A-Za-z0-9]{8})",
    )

"""Who signed in, and how: the hand-off from a way of signing in (local password + TOTP, an external OIDC IdP)
to the embedded authorization server, which turns it into an authorization code and then tokens.

    LoginIdentity(subject="alice", username="alice", groups={"eng"}, amr=("pwd", "otp"), idp="local")

`amr` follows RFC 8176 (`pwd`, `otp`, `mfa`, `hwk`, …) and ends up in the access token; `mfa` for policy is
true when it holds `mfa`, `otp`, `hwk` or `sc`, or more than one factor. `idp` is `local` or the id of the
configured SSO provider the identity came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

MFA_METHODS = frozenset({"mfa", "otp", "hwk", "sc", "swk", "fpt", "face", "iris", "retina", "vbm"})
_FACTORS = {"pwd": "know", "pin": "know", "kba": "know", "otp": "have", "hwk": "have", "swk": "have",
            "sc": "have", "sms": "have", "tel": "have", "fpt": "are", "face": "are", "iris": "are",
            "retina": "are", "vbm": "are"}  # fmt: skip


def is_multi_factor(amr: Iterable[str]) -> bool:
    """Whether an `amr` list shows multi-factor authentication (RFC 8176 §2)."""
    methods = set(amr)
    if methods & MFA_METHODS:
        return True
    return len({_FACTORS[m] for m in methods if m in _FACTORS}) > 1


@dataclass(frozen=True, slots=True)
class LoginIdentity:
    """A person who has just proven who they are, ready to be issued an authorization code."""

    subject: str  # the stable id tokens, policy and audit use
    username: str  # what is shown on consent pages and in logs
    groups: frozenset[str] = frozenset()
    amr: tuple[str, ...] = ()
    idp: str = "local"
    display_name: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # e.g. {"email": …}; never secrets

    @property
    def mfa(self) -> bool:
        return is_multi_factor(self.amr)

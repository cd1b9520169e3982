"""What every endpoint of the authorization server shares: settings, stores, the token issuer, the clock,
the audit log, the in-memory revocation set, and the URLs built from the issuer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from portico.audit.log import AuditLog
from portico.identity.authserver.clients import ClientRegistry
from portico.identity.authserver.grants import GrantStore
from portico.identity.authserver.model import ExternalLoginLink, utc
from portico.identity.authserver.settings import AuthServerSettings
from portico.identity.keys import KeyRing
from portico.identity.settings import TokenSettings
from portico.identity.tokens import TokenIssuer
from portico.identity.users import UserDirectory

log = logging.getLogger("portico.identity.authserver")

BROWSER_COOKIE = "portico_as_browser"
SESSION_COOKIE = "portico_as_session"


@dataclass
class ServerContext:
    settings: AuthServerSettings
    tokens: TokenSettings
    issuer: TokenIssuer
    keyring: KeyRing
    grants: GrantStore
    clients: ClientRegistry
    users: UserDirectory
    resources: Callable[[], Collection[str]]
    audit: AuditLog | None
    external_logins: Sequence[ExternalLoginLink]
    clock: Callable[[], float]
    revoked: dict[str, float] = field(default_factory=dict)  # jti -> exp

    @property
    def issuer_url(self) -> str:
        return self.tokens.issuer

    @property
    def base_path(self) -> str:
        """The issuer's path ("" by default); every endpoint lives under it."""
        return urlsplit(self.tokens.issuer).path.rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.tokens.issuer).scheme == "https"

    def url(self, path: str) -> str:
        return self.tokens.issuer.rstrip("/") + path

    def path(self, path: str) -> str:
        return self.base_path + path

    def now(self) -> datetime:
        return utc(self.clock())

    def default_resource(self) -> str | None:
        return next(iter(self.resources()), None)

    def audit_event(
        self,
        method: str,
        outcome: str,
        *,
        subject: str = "anonymous",
        client_id: str | None = None,
        ip: str | None = None,
        reason: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """One audit record for a login, grant, revocation or registration (no-op without an audit log)."""
        if self.audit is None:
            return
        self.audit.event(
            method,
            outcome,
            subject=subject,
            client_id=client_id,
            ip=ip,
            reason=reason,
            extra=extra,
            authenticated_by="oauth",
        )

    def remember_revoked(self, jti: str, exp: float) -> None:
        self.revoked[jti] = exp

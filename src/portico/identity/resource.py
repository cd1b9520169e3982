"""Portico as an OAuth 2.1 resource server, as the MCP authorization spec requires of an MCP server.

    GET /.well-known/oauth-protected-resource[/mcp | /servers/<id>/mcp]   → RFC 9728 metadata of that resource
    every MCP request                                                       → authenticate(headers, server)

Each MCP URL is its own resource: `<public>/mcp` (the portal) and `<public>/servers/<id>/mcp`. A token is
accepted only at the resource it was issued for (RFC 8707 `resource` → `aud`), so a token for one server's URL
is refused at the portal and the other way round. The token is read from the `Authorization: Bearer` header
only (never the query string), verified by `TokenVerifier` (signature, issuer, times, audience, revocation),
and must carry the `mcp` scope. What comes out is a `Principal`; the token itself goes no further — upstreams
get Portico's own credentials, never this token.

Refusals follow RFC 6750 §3 and the MCP spec: 401 with `WWW-Authenticate: Bearer resource_metadata="…",
scope="mcp"` (plus `error="invalid_token"` when a token was sent), 403 `error="insufficient_scope"` when the
token lacks the scope. The public reason is the token rejection's stable code; nothing from the token is echoed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from portico.identity.login import is_multi_factor
from portico.identity.settings import MCP_SCOPE
from portico.identity.tokens import InvalidTokenError, TokenVerifier, VerifiedToken
from portico.types import Principal

PRM_PREFIX = "/.well-known/oauth-protected-resource"
_BEARER = "bearer"


@dataclass(frozen=True, slots=True)
class Challenge:
    """A refusal to send instead of serving the request."""

    status: int  # 401 or 403
    www_authenticate: str
    error: str  # "invalid_request", "invalid_token", "insufficient_scope"
    description: str

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}


class ResourceServer:
    """Checks the bearer token of every MCP request and publishes the protected-resource metadata."""

    def __init__(
        self,
        public_url: str,
        issuer: str,
        verifier: TokenVerifier,
        server_ids: Callable[[], Iterable[str]],
        *,
        scope: str = MCP_SCOPE,
        resource_name: str = "Portico",
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.issuer = issuer
        self.verifier = verifier
        self._server_ids = server_ids
        self.scope = scope
        self.resource_name = resource_name

    # ------------------------------------------------------------------------------------- resources

    def resource(self, server: str | None) -> str:
        """The resource identifier (and token audience) of the portal (`None`) or one server's URL."""
        return f"{self.public_url}{_path(server)}"

    def resources(self) -> list[str]:
        """Every resource Portico protects, the portal first."""
        return resource_urls(self.public_url, self._server_ids())

    def metadata_url(self, server: str | None) -> str:
        """Where a resource's metadata is published: the well-known prefix inserted before its path (RFC 9728 §3.1)."""
        return f"{self.public_url}{PRM_PREFIX}{_path(server)}"

    def metadata(self, server: str | None) -> dict[str, Any]:
        """The RFC 9728 protected-resource metadata document of one resource."""
        title = "the portal" if server is None else f"server {server}"
        return {
            "resource": self.resource(server),
            "authorization_servers": [self.issuer],
            "scopes_supported": [self.scope],
            "bearer_methods_supported": ["header"],
            "resource_name": f"{self.resource_name} ({title})",
        }

    def metadata_for_path(self, path: str) -> dict[str, Any] | None:
        """The metadata served at a well-known `path`, or None when it names no resource of Portico's.

        The bare prefix describes the portal: clients fall back to it when the path-inserted URL fails.
        """
        if not path.startswith(PRM_PREFIX):
            return None
        rest = path[len(PRM_PREFIX) :].rstrip("/")
        if rest in ("", "/mcp"):
            return self.metadata(None)
        if rest.startswith("/servers/") and rest.endswith("/mcp"):
            server_id = rest[len("/servers/") : -len("/mcp")]
            if server_id in set(self._server_ids()):
                return self.metadata(server_id)
        return None

    # --------------------------------------------------------------------------------- authenticating

    def authenticate(self, headers: Mapping[str, str], server: str | None, ip: str | None) -> Principal | Challenge:
        """The caller of a request to the portal (`server` None) or one server's URL, or why it is refused.

        `headers` are the request's, names lowercased (one value per name: a repeated Authorization header
        is refused by the transport before this).
        """
        raw = headers.get("authorization")
        if raw is None:
            return self.challenge(server, 401, "invalid_token", "an access token is required", with_error=False)
        kind, _, token = raw.strip().partition(" ")
        token = token.strip()
        if kind.lower() != _BEARER or not token:
            return self.challenge(server, 401, "invalid_request", "use an Authorization: Bearer access token")
        try:
            verified = self.verifier.verify(token, self.resource(server))
        except InvalidTokenError as exc:
            return self.challenge(server, 401, "invalid_token", f"the access token is not valid: {exc.reason}")
        if self.scope not in verified.scopes:
            return self.challenge(server, 403, "insufficient_scope", f"the access token lacks the {self.scope} scope")
        return principal_of(verified, ip)

    def challenge(
        self, server: str | None, status: int, error: str, description: str, *, with_error: bool = True
    ) -> Challenge:
        """RFC 6750 §3: a request without any token gets no error code, only how to get one."""
        parts = [f'resource_metadata="{self.metadata_url(server)}"', f'scope="{self.scope}"']
        if with_error:
            parts.append(f'error="{error}"')
            parts.append(f'error_description="{description}"')
        return Challenge(status, "Bearer " + ", ".join(parts), error, description)


def resource_urls(public_url: str, server_ids: Iterable[str]) -> list[str]:
    """Every MCP URL of a Portico as a token audience: the portal first, then each server's."""
    base = public_url.rstrip("/")
    return [f"{base}{_path(None)}", *(f"{base}{_path(server_id)}" for server_id in server_ids)]


def principal_of(verified: VerifiedToken, ip: str | None) -> Principal:
    """The `Principal` a verified access token stands for."""
    return Principal(
        subject=verified.subject,
        groups=verified.groups,
        client_id=verified.client_id,
        authenticated_by="jwt",
        mfa=is_multi_factor(verified.amr),
        ip=ip,
        claims={"amr": verified.amr, "scope": " ".join(sorted(verified.scopes)), "jti": verified.jti},
    )


def _path(server: str | None) -> str:
    return "/mcp" if server is None else f"/servers/{server}/mcp"
